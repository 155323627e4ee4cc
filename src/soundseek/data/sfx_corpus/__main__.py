"""``python -m soundseek.data.sfx_corpus``: see :mod:`.cli`."""

from .cli import main

raise SystemExit(main())
