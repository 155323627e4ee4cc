"""How wide the command line's output is: a terminal's width, ``COLUMNS`` when set, and no
folding at all when the output goes to a pipe or a file (grep, copy-paste)."""

from __future__ import annotations

import os

#: the width of output that goes to a pipe or a file (``COLUMNS`` unset): wide enough that no
#: path folds, for grep and copy-paste (rich would fold at 80 columns)
PIPED_WIDTH = 1000


def fit_width(console) -> None:
    """``console``'s width (a rich Console): ``COLUMNS`` when set (read now: a command run later
    in the same process, tests or an embedding app, may set another), else the terminal's, else
    :data:`PIPED_WIDTH`."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit():
        console.width = int(cols)
    elif not console.is_terminal:
        console.width = PIPED_WIDTH
