"""One figure of what ``soundseek adapt`` does on the leave-packages-out libraries (issue 18), from
the results JSON of ``adapt_library.py`` (content-only search of the opaque files) and
``adapt_hybrid.py`` (hybrid search by kind of file).

    python benchmarks/plot_adaptation.py [--library RESULTS.json] [--hybrid RESULTS.json] [--out docs/img/adaptation.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", type=Path, default=RESULTS / "adapt_library-2026-12-07-sfx.json")
    p.add_argument("--hybrid", type=Path, default=RESULTS / "adapt_hybrid-2026-12-07-sfx.json")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "adaptation.png")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lib = json.loads(a.library.read_text())["summary"]
    hyb = json.loads(a.hybrid.read_text())["summary"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})

    keys = sorted(lib, key=lambda k: (k.split("/")[0] != "files", k))
    x = np.arange(len(keys))
    before = [lib[k]["base_p1"] for k in keys]
    after = [lib[k]["served_p1"] for k in keys]
    lo = [lib[k]["served_p1"] - min(lib[k]["served_p1_seeds"]) for k in keys]
    hi = [max(lib[k]["served_p1_seeds"]) - lib[k]["served_p1"] for k in keys]
    ax1.bar(x - 0.2, before, 0.4, label="base model", color="#b0b0b0")
    ax1.bar(x + 0.2, after, 0.4, yerr=[lo, hi], capsize=3, label="after adapt (served; seeds min-max)",
            color="#3572b0")
    ax1.set_xticks(x, [k.replace("/", "\n") for k in keys], fontsize=8)
    ax1.set_ylabel("P@1, opaque files, content only")
    ax1.set_title("Unnamed files found by sound (natural queries)", fontsize=10)
    ax1.set_ylim(0, 0.8)
    ax1.legend(fontsize=8, loc="upper right")

    views = ("named", "opaque", "library")
    modes = (("content", "content, before adapt", "#b0b0b0"), ("metadata", "metadata", "#e0b050"),
             ("hybrid", "hybrid, before adapt", "#8fb8de"), ("hybrid+memory+names", "hybrid, after adapt", "#3572b0"))
    groups = [(prot, v) for prot in ("labels", "files") for v in views]
    if "named/all" in hyb:  # the library with every file under its own name
        groups.append(("named", "library"))
    x = np.arange(len(groups))
    w = 0.2
    for i, (mode, label, color) in enumerate(modes):
        ax2.bar(x + (i - 1.5) * w, [hyb[f"{prot}/all"][f"{mode}/{v}/p1"] for prot, v in groups], w,
                label=label, color=color)
    ax2.set_xticks(x, [f"{prot}\n{v}" if prot != "named" else "all files\nnamed" for prot, v in groups], fontsize=8)
    ax2.set_ylabel("P@1")
    ax2.set_title("Hybrid search by kind of file (all three libraries)", fontsize=10)
    ax2.set_ylim(0, 1.0)
    ax2.axhline(0.75, color="#999", lw=0.8, ls="--")
    ax2.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
