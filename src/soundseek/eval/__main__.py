"""`python -m soundseek.eval evaluate ...`: the evaluate command without the main CLI."""

import typer

from .cli import register

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _group() -> None:
    """soundseek evaluation."""


register(app)

if __name__ == "__main__":
    app()
