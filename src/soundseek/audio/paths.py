"""How a path that is not a usable file is described, and how skipped paths are shown.

Both exist so every "skipped" line a user reads names the file the same way (absolute, the
link itself rather than its target) and says what is wrong with it (a loop is not a broken
link, a folder is not a missing file).
"""

from __future__ import annotations

import errno
import os
import stat


NOT_UTF8 = ("its name is not valid UTF-8 (bytes of another encoding, written here as \\xNN); rename it, "
            "e.g. `convmv -f latin1 -t utf-8 --notest -r FOLDER`")


def display_path(path: str | os.PathLike) -> str:
    """The absolute, normalised form of ``path`` *without* following symbolic links: what a
    report of skipped files shows, so relative and absolute inputs read the same and a broken
    link is named by the link, not by a target that does not exist.  A name that is not valid
    UTF-8 is shown with ``\\xNN`` escapes (it could not be printed or stored otherwise)."""
    shown = os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))
    return shown if utf8_name(shown) else os.fsencode(shown).decode("utf-8", "backslashreplace")


def utf8_name(path: str | os.PathLike) -> bool:
    """False for a path whose bytes are not UTF-8 (Python holds them as surrogates): such a
    path cannot be stored in the catalog or shown, so the file is skipped with :data:`NOT_UTF8`."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def on_disk(path: str | os.PathLike) -> bool:
    """True when the indexed file at ``path`` is still a regular file (one ``stat``): what the
    API's ``available`` / ``audio_missing``, ``soundseek check``'s gone files and the CLI's
    "(file missing)" mark all mean by a file that is no longer on disk.  A file this user may not
    look at (its folder cannot be entered) is not gone: `check` offered to drop such files."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except PermissionError:  # in a folder this user cannot enter: out of reach, not gone (nothing to drop)
        return True
    except (OSError, ValueError):
        return False


def path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a regular file, in words, or None when it can.

    Distinguishes a symbolic link loop, a broken symbolic link, a folder, a pipe/socket/device,
    a permission problem and a plain missing file."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link points back to itself through other links)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(p) or _has_link_parent(p):
                return "broken symbolic link (its target does not exist)"
            return "file not found"
        if e.errno == errno.EACCES:
            return "permission denied"
        return f"cannot read file ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if not utf8_name(p):
        return NOT_UTF8
    return None


def _has_link_parent(p: str) -> bool:
    """True when a folder on the way to ``p`` is a symbolic link whose target is missing."""
    head = os.path.dirname(os.path.abspath(p))
    while head and head != os.path.dirname(head):
        if os.path.islink(head) and not os.path.exists(head):
            return True
        head = os.path.dirname(head)
    return False
