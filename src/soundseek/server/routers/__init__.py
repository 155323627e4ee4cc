"""The API's routes, one router per area: meta (health, stats), search, items, page.

``search`` and ``items`` are built per app (``build_router(config)``) because their ``k``
parameter's default and documented range come from the config and are part of the schema.
"""
