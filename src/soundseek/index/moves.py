"""Files that moved: an indexed file whose path is gone, found again under another path with the
same content (a folder renamed or moved, an archive copied to a new drive and the old one gone).

Such a file keeps its entry — its id, windows, vectors, duplicate group, and what ``soundseek
adapt`` learned of it — and its path, size, mtime and words change (``adapt``'s name vectors
caption it again under its new name: :attr:`~.ingest.Ingest.moved_ids`; the name memory keeps
what its old name said until the next ``adapt``): re-adding it as new (and pruning the old entry,
or leaving it "(file missing)") lost all that and changed rankings after ``adapt``.  Off with
``prune=False`` (a drive not mounted is no move).  Pure bookkeeping over the catalog: the caller (:class:`~.ingest.Ingest`) holds
the writer lock."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Callable

from .catalog import Item
from .scan import inside, vanished
from .types import AddReport


def find_moved(new_paths: list[str], known: dict[str, Item], sizes: dict[str, int],
               hash_of: Callable[[str], str], scanned: list[str] = (), present=frozenset()) -> dict[str, Item]:
    """``{new path: indexed item}`` for the new paths that hold exactly what an indexed file held
    whose own path no longer exists, and that are plainly that file: either its old place is
    inside a folder this run scanned (it is not there: renamed or moved away), or the new file
    has the old one's name (an archive moved whole; a copy under another name while a drive is
    not mounted takes nothing over).  Among files of the same content, the one of the same name
    first, then the lowest id.  Only known files of a size some new file has are looked at, and
    only new files of a size some gone file had are hashed: a run with nothing new stats nothing.
    ``present``: the paths the scan found (not gone, whatever their case)."""
    wanted = {sizes[p] for p in new_paths if p in sizes}
    if not wanted:
        return {}
    gone: dict[int, list[tuple[str, Item]]] = defaultdict(list)
    for path, item in known.items():
        if item.size in wanted and path not in present and vanished(path):  # (as pruning tells a file gone)
            gone[item.size].append((path, item))
    if not gone:
        return {}
    for bucket in gone.values():
        bucket.sort(key=lambda pi: pi[1].id)
    found: dict[str, Item] = {}
    for path in new_paths:
        candidates = gone.get(sizes.get(path, -1))
        if not candidates:
            continue
        try:
            digest = hash_of(path)
        except OSError:
            continue  # read as a new file, which reports what is wrong
        name = os.path.basename(path)
        fits = [(os.path.basename(old) != name, k) for k, (old, it) in enumerate(candidates)
                if it.hash == digest and (os.path.basename(old) == name or any(inside(old, d) for d in scanned))]
        if fits:
            _, k = min(fits)
            found[path] = candidates.pop(k)[1]
    return found


def roots_still_used(roots: list[str], paths) -> list[str]:
    """``roots`` less the folders that hold no indexed file any more (all of theirs moved):
    ``info`` no longer lists the old place of a moved archive, even where an empty folder is left
    there (a drive's old mount point: a USB-drive probe)."""
    paths = list(paths)
    return [r for r in roots if any(inside(p, r) for p in paths)]


def take_moved(ingest, todo: list[str], known: dict[str, Item], listed: dict[str, tuple], roots: list[str],
               report: AddReport, word_roots: list[str] | None = None) -> set[int]:
    """The files of ``todo`` that are indexed files moved (:func:`find_moved`) keep their entries
    in ``ingest``'s catalog: path, size, mtime and words (of the new folders) updated, machine
    tags kept (the sound did not change); they leave ``todo`` and count in ``report.moved``.
    ``listed``: each path's signature (size, mtime, ...); ``roots``: the folders this run
    scanned (linked folders' targets too); ``word_roots``: those folder words start below (default
    ``roots``).  Returns their item ids."""
    found = find_moved([p for p in todo if p not in known], known, {p: listed[p][0] for p in todo},
                       ingest.store.hash_of, roots, present=listed.keys())
    ft = ingest.meta.fulltext
    tags = ft.machine_tags([it.id for it in found.values()]) if ft is not None and found else {}
    for path, item in found.items():
        ingest.meta.move_item(item.id, path, listed[path][0], listed[path][1])
        if item.id in tags:
            ingest.record_metadata(item.id, path, None, roots if word_roots is None else word_roots, tags[item.id])
        todo.remove(path)
    report.moved += len(found)
    return {it.id for it in found.values()}
