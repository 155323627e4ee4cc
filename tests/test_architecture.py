"""The code's shape, checked: no import circles, no import from a higher layer, no file over
600 lines, and no code outside a class (or module) using its private names.

Why: these are the rules of docs/architecture.md; a test keeps them true as the code grows.
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "soundseek"
TESTS = Path(__file__).resolve().parent

# Lower layers never import higher ones; a package may import its own layer's peers only when
# listed in PEERS. The package face `soundseek/__init__.py` is the top: nothing inside imports it.
LAYERS = {
    "audio": 0, "data": 0, "losses": 0,
    "experts": 1,
    "features": 2,
    "models": 3,
    "index": 4, "eval": 4, "search": 4,
    "train": 5, "export": 5, "adapt": 5,
    "server": 6, "demo": 6, "cli": 7, "__main__": 8,
}
PEERS = {("search", "index")}
MAX_LINES = 600
# Private names of other libraries that the code has a reason to use: numpy's pickle
# reconstructor (named in torch.load's weights_only allow-list), torch's bf16 probe, os._exit in
# forked children.
ALLOWED_PRIVATE = {"_reconstruct", "_is_mkldnn_bf16_supported", "_exit"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    b = ".".join(base + ([node.module] if node.module else []))
                else:
                    b = node.module or ""
                if not b.startswith("soundseek"):
                    continue
                subs = [f"{b}.{a.name}" for a in node.names if f"{b}.{a.name}" in mods]
                targets += subs if len(subs) == len(node.names) else [b, *subs]
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names if a.name.startswith("soundseek")]
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != m:
                    edges[m].add(t)
    return edges


def _package(m: str) -> str:
    parts = m.split(".")
    return parts[1] if len(parts) > 1 else "<face>"


def test_no_import_circles():
    mods = _modules()
    edges = _imports(mods)
    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    import sys
    sys.setrecursionlimit(10000)
    for v in sorted(mods):
        if v not in index:
            visit(v)
    assert not sccs, f"import circles: {sccs}"


def test_no_import_from_a_higher_layer():
    edges = _imports(_modules())
    bad = []
    for a, bs in sorted(edges.items()):
        pa = _package(a)
        for b in sorted(bs):
            pb = _package(b)
            if pa == pb:
                continue
            if pb == "<face>":
                bad.append(f"{a} imports the package face soundseek/__init__")
                continue
            if pa == "<face>":
                continue
            la, lb = LAYERS.get(pa), LAYERS.get(pb)
            assert la is not None and lb is not None, f"add {pa!r} / {pb!r} to LAYERS"
            if lb > la or (lb == la and (pa, pb) not in PEERS):
                bad.append(f"{a} ({pa}, layer {la}) imports {b} ({pb}, layer {lb})")
    assert not bad, "\n".join(bad)


def test_no_source_file_over_the_limit():
    long = {str(f.relative_to(SRC)): n for f in SRC.rglob("*.py")
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def _class_privates(cls: ast.ClassDef) -> set[str]:
    """Private names a class owns: its methods and the attributes it assigns on any instance."""
    owned = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    owned |= {t.id for n in cls.body if isinstance(n, (ast.Assign, ast.AnnAssign))
              for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            owned.add(node.attr)
    return {n for n in owned if n.startswith("_")}


def _private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []

    def walk(node, owned: frozenset):
        if isinstance(node, ast.ClassDef):
            owned = owned | _class_privates(node)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            inside = node.attr in owned
            if not inside and not (isinstance(base, ast.Name) and base.id in ("self", "cls")) \
                    and node.attr not in ALLOWED_PRIVATE:
                name = f"{base.id}.{node.attr}" if isinstance(base, ast.Name) else f"?.{node.attr}"
                found.append(f"{path.name}:{node.lineno} {name}")
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("soundseek")):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{a.name}")
        for child in ast.iter_child_nodes(node):
            walk(child, owned)

    walk(tree, frozenset())
    return found


@pytest.mark.parametrize("where", ["src", "tests"])
def test_no_private_names_used_from_outside(where):
    root = SRC if where == "src" else TESTS
    hits = [u for f in sorted(root.rglob("*.py")) for u in _private_uses(f)]
    assert not hits, "private names used from outside their class or module:\n" + "\n".join(hits)
