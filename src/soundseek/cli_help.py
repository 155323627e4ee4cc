"""How the command line's help reads (one-line summaries, flags without a value's type), and the
command table that adds the other packages' commands only when asked (:class:`LazyTyper`)."""

from __future__ import annotations

import inspect

import typer
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


class LazyTyper(typer.Typer):
    """A Typer that adds the other packages' commands (``soundseek.cli``'s ``_SUBCOMMANDS``) the
    first time its command table is read, not at import: importing the server's stack alone
    (FastAPI, pydantic) costs ~0.25 s, a quarter of a cold ``soundseek search``.
    ``soundseek.cli.main`` skips them entirely for the commands ``soundseek.cli`` defines;
    ``--help``, other commands and ``CliRunner`` see the full table, in the same order as before.
    Its commands' help reads plainly (:func:`reflowed`, :func:`plain_flags`)."""

    _extras = "off"  # "off" while the CLI module defines its own commands, then "pending" -> "done"
    _loader = None  # what adds the other commands (defer_extras)

    @property
    def registered_commands(self):
        self._load_extras()
        for c in self._commands:  # rich help keeps a docstring's line breaks: "...are never" / "overwritten"
            if c.help is None and c.callback is not None and c.callback.__doc__:
                c.help = reflowed(c.callback.__doc__)
            if c.callback is not None:
                plain_flags(c.callback)
            c.cls = PlainHelpCommand.instead_of(c.cls)
        return self._commands

    @registered_commands.setter
    def registered_commands(self, value):
        self._commands = value

    @property
    def registered_groups(self):
        self._load_extras()
        for g in self._groups:  # `soundseek models download --force`: a flag there too
            for c in g.typer_instance.registered_commands if g.typer_instance else ():
                plain_flags(c.callback)
                c.cls = PlainHelpCommand.instead_of(c.cls)
            g.cls = g.cls or PlainHelpGroup
        return self._groups

    @registered_groups.setter
    def registered_groups(self, value):
        self._groups = value

    def _load_extras(self) -> None:
        if self._extras == "pending":
            self._extras = "loading"
            self._loader()
            self._extras = "done"

    def defer_extras(self, loader) -> None:
        """From now on, add the other packages' commands (``loader()``) on the first read of the
        command table."""
        self._loader = loader
        self._extras = "pending"

    def skip_extras(self) -> None:
        """Never add the other packages' commands (a command defined here needs none of them)."""
        if self._extras == "pending":
            self._extras = "done"
