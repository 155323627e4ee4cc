"""How the command line's help reads: one-line summaries, flags without a value's type."""

from __future__ import annotations

import inspect

from typer.core import TyperCommand, TyperGroup


def reflowed(doc: str) -> str:
    """A command's docstring for its help: the first paragraph (the line in the command list) as
    one line that the terminal wraps, the rest as written."""
    first, _, rest = inspect.cleandoc(doc).partition("\n\n")
    return " ".join(first.split()) + (f"\n\n{rest}" if rest else "")


def plain_flags(callback) -> None:
    """Show on/off options as bare flags (``--json``), not ``--json <bool>``: Typer 0.29 writes a
    type after every option, which reads as if the flag took a value (``--json true`` is refused)."""
    import typer.models

    for p in inspect.signature(callback).parameters.values():
        info = p.default
        if isinstance(info, typer.models.OptionInfo) and isinstance(info.default, bool) and info.metavar is None:
            info.metavar = ""


class _BareHelp:
    """``--help`` as a bare flag too: Typer makes that option itself, so :func:`plain_flags`
    never sees it."""

    def get_help_option(self, ctx):
        opt = super().get_help_option(ctx)
        if opt is not None and opt.metavar is None:
            opt.metavar = ""
        return opt


class PlainHelpCommand(_BareHelp, TyperCommand):
    """A command whose ``--help`` reads as a flag."""

    @classmethod
    def instead_of(cls, chosen):
        """This class where a command has Typer's default one (``app.command()`` sets it)."""
        return cls if chosen in (None, TyperCommand) else chosen


class PlainHelpGroup(_BareHelp, TyperGroup):
    """A command group whose ``--help`` reads as a flag."""


def show_version(asked: bool, console) -> None:
    """``soundseek --version``: print the version and stop (nothing else is run)."""
    if asked:
        import typer

        from .eval.runner import soundseek_version

        console.print(f"soundseek {soundseek_version()}", highlight=False)
        raise typer.Exit()
