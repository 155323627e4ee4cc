"""Training retrieval models on cached expert features.

``config`` (typed YAML configs), ``data`` (cached feature sets), ``trainer`` (the generic loop,
evaluation, checkpoints), ``augment`` (feature masking), ``pipeline`` (YAML -> checkpoint),
``cli`` (``soundseek train``), ``recipes`` (the default model and its variants).
"""
