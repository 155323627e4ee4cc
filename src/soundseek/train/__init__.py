"""Training retrieval models on cached expert features.

``config`` (typed YAML configs), ``data`` (cached feature sets), ``trainer`` (the one training
loop and the one similarity function, evaluation, checkpoints), ``distill`` (the papers'
settings, two-stage distillation), ``experiment`` (``soundseek experiment``), ``augment``
(feature masking), ``pipeline`` (YAML -> checkpoint), ``cli`` (``soundseek train``),
``recipes`` (the default model and its variants).
"""
