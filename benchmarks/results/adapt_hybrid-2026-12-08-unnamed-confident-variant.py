"""adapt_hybrid.py with an unnamed file's hybrid score raised by its plain content confidence:
0.7 * lifted + 0.3 * c_plain ** POWER (an experiment, not shipped)."""
import os, sys
sys.path.insert(0, "benchmarks")
import soundseek.index.fusion as F

orig = F.fuse_named
POWER = float(os.environ.get("VAR_POWER", "2"))


def fuse_named_v(content, lifted, meta, named, by_words, p=None, near=None, unnamed_share=F.UNNAMED_SHARE,
                 mismatch_share=F.MISMATCH_SHARE):
    out = orig(content, lifted, meta, named, by_words, p, near, unnamed_share, mismatch_share)
    c, m = dict(content), dict(meta)
    order = {d: i for i, (d, _) in enumerate(out)}
    res = [(d, sc + (1 - unnamed_share) * c.get(d, 0.0) ** POWER if m.get(d, 0.0) <= 0 and d not in named else sc)
           for d, sc in out]
    return sorted(res, key=lambda kv: (-kv[1], order[kv[0]]))


F.fuse_named = fuse_named_v
import adapt_hybrid  # noqa: E402

raise SystemExit(adapt_hybrid.main(sys.argv[1:]))
