"""`python -m soundseek ...` is the same as the `soundseek` command."""

from .cli import main

main()
