"""Adapt the index's text–audio model to the library from the library's own named files.

What is trained: the audio heads of the model's trained members (``DualEncoder``), starting from
the shipped weights, with a small learning rate and an L2 pull back towards them (L2-SP), on
(weak caption, window) pairs of the named files.  The text heads and the YAMNet label bridge stay
as they are: queries are natural sentences, weak captions are terse name words, and a text side
tuned on names would forget how people describe sounds; the audio side is what differs from
library to library (recording chains, game-style sound design).  Names alone still pull the
audio side towards a library's jargon ("ogre die", "magic dark big"), which cost natural queries
10 points of P@1 on one benchmark library; so every step also keeps each window's distribution
over the bridge's 521 class prompts ("the sound of dog") close to the shipped model's (learning
without forgetting, Li & Hoiem 2016), on windows of the whole library, named or not.  The saved
model is an ordinary model directory (same members, weights and gate): anything loads it.

The hold-out check: the named files' caption groups are split (a group, i.e. files named alike,
never straddles the split), the adapter is trained on one part, and base and adapted models rank
the held-out files for the held-out captions.  The adaptation is kept only when it raises the
check's mAP by ``min_gain``; the kept model is then trained again on every named file.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..index.captions import CaptionConfig, caption_context, name_words_as_written
from .library import LibraryFile, collect_library, library_items
from .progress import StepBar, planned_steps
from .memory import MemoryConfig, check_memory, mean_frames, memory_for
from .scoring import file_scores, rank_metrics, split_groups, window_vectors

REPORT_FILE = "adapt_report.json"


#: fewer held-out names than this make the model's check "few: a weak check" in its verdict
WEAK_CHECK_GROUPS = 10


@dataclass
class AdaptConfig:
    """Settings of one adaptation run (saved in the report)."""

    seed: int = 0
    epochs: int = 30
    max_steps: int = 600  # per member: a large library gets fewer epochs, not more time
    lr: float = 3e-4
    batch_size: int = 64
    temperature: float = 0.07
    anchor: float = 1e-2  # L2-SP: weight of sum((w - w_shipped)^2) per parameter tensor
    train_text: bool = False  # also tune the text heads (off: queries are sentences, captions names)
    max_windows: int = 4  # training windows per file (evenly spaced); the check uses all
    holdout_fraction: float = 0.3  # share of caption groups held out for the check
    min_gain: float = 0.01  # keep only if held-out mAP rises by at least this much
    min_named_files: int = 20
    min_groups: int = 8
    out_dir: str = "adapted"  # relative to the index folder (or absolute)
    keep_weight: float = 5.0  # learning without forgetting on the bridge's class prompts (0: off)
    keep_temperature: float = 0.1
    bridge_shift: float = 0.0  # lower the label bridge's query-gate shares (lo, hi) by this much
    always_save: bool = False  # save the adapted model even when the check discards it (benchmarks)
    threads: int = 1
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)  # the name memory (soundseek.adapt.memory)


@dataclass
class AdaptReport:
    """What adaptation did and the numbers that decided it (``adapt_report.json``)."""

    kept: bool
    reason: str
    base_model: str
    model_dir: str | None
    files: int
    named_files: int
    caption_groups: int
    check: dict  # {"base": RankMetrics, "adapted": RankMetrics, "gain_map": ..., "train_files", ...}
    seconds: float
    config: dict
    examples: list = field(default_factory=list)  # a few (file name, caption) pairs
    # when it ran (UTC): the report's own date, which a copy of the index (cp -r) keeps
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "AdaptReport":
        return cls(**json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------
# the model's parts


def trainable_members(model) -> list[int]:
    """Indices of the members whose audio head adaptation tunes (dual encoders)."""
    from ..models.dual_encoder import DualEncoder
    from ..models.ensemble import EnsembleModel

    if isinstance(model, EnsembleModel):
        return [i for i, m in enumerate(model.members) if isinstance(m, DualEncoder)]
    return [0] if isinstance(model, DualEncoder) else []


def member(model, i: int):
    from ..models.ensemble import EnsembleModel

    return model.members[i] if isinstance(model, EnsembleModel) else model


def text_expert_name(model) -> str:
    experts = getattr(model, "text_experts", None) or [model.config.text_expert]
    return experts[0]


def caption_vectors(model, captions: list[str]) -> np.ndarray:
    """Sentence vectors of captions with the model's text expert (its torch-free twin when there
    is one: the same vectors to ~1e-6, without importing sentence-transformers)."""
    from ..experts.minilm_fast import light_text_expert

    expert = light_text_expert(text_expert_name(model))
    return np.asarray(expert.encode(list(captions)).sentence, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# training one model


def pooled_inputs(files: list[LibraryFile], pooling: str) -> tuple[np.ndarray, np.ndarray]:
    """Every window's pooled frames (W, 2D for meanmax) and the file index of each window."""
    import torch

    from ..models.heads import masked_pool

    rows, owner = [], []
    for fi, f in enumerate(files):
        for w in f.windows:
            rows.append(masked_pool(torch.from_numpy(w)[None], None, pooling)[0].numpy())
            owner.append(fi)
    return np.stack(rows).astype(np.float32), np.asarray(owner, dtype=np.int64)


def adapt_member(head, pooled: np.ndarray, owner: np.ndarray, text: np.ndarray, group: np.ndarray,
                 cfg: AdaptConfig, seed: int, keep: tuple[np.ndarray, np.ndarray] | None = None, on_step=None):
    """A copy of ``head`` (DualEncoder) with its audio head (and text head if ``cfg.train_text``)
    tuned on windows ``pooled`` of files ``owner``; ``text[f]`` is file f's caption vector and
    ``group[f]`` its caption group (same group = positives).  ``keep`` = (pooled windows of the
    whole library, sentence vectors of general prompts): every step also pulls the tuned audio
    side's distribution over the prompts back to the shipped one on a batch of the library's
    windows (learning without forgetting, weight ``cfg.keep_weight``), so that learning the
    library's names does not unlearn how people describe sounds."""
    import torch
    import torch.nn.functional as F

    from ..losses import nt_xent_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(head)
    parts = [model.audio_head] + ([model.text_head] if cfg.train_text else [])
    params = [p for part in parts for p in part.parameters()]
    anchors = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    by_file = [np.flatnonzero(owner == f) for f in range(len(text))]
    t_all = torch.from_numpy(text)
    p_all = torch.from_numpy(pooled)
    n = len(by_file)
    with torch.no_grad():
        t_fixed = F.normalize(model.text_head(model.text_norm(t_all)), dim=-1) if not cfg.train_text else None
    lwf = keep is not None and cfg.keep_weight > 0
    if lwf:
        k_all = torch.from_numpy(keep[0])
        with torch.no_grad():
            head.eval()
            k_prompts = F.normalize(head.text_head(head.text_norm(torch.from_numpy(keep[1]))), dim=-1)
            k_base = F.normalize(head.audio_head(head.audio_norm(k_all)), dim=-1) @ k_prompts.T
            k_target = torch.softmax(k_base / cfg.keep_temperature, dim=-1)
    steps = 0
    for _ in range(cfg.epochs):
        model.train()
        order = rng.permutation(n)
        for lo in range(0, n, cfg.batch_size):
            fb = order[lo:lo + cfg.batch_size]
            if len(fb) < 2 or steps >= cfg.max_steps:
                continue
            steps += 1
            wb = np.array([rng.choice(by_file[f]) for f in fb])
            a = F.normalize(model.audio_head(model.audio_norm(p_all[wb])), dim=-1)
            if cfg.train_text:
                t = F.normalize(model.text_head(model.text_norm(t_all[fb])), dim=-1)
            else:
                t = t_fixed[fb]
            pos = torch.from_numpy(group[fb][:, None] == group[fb][None, :])
            loss = nt_xent_loss(t @ a.T, pos, cfg.temperature)
            if cfg.anchor:
                loss = loss + cfg.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, anchors))
            if lwf:
                kb = torch.from_numpy(rng.integers(0, len(k_all), cfg.batch_size))
                ka = F.normalize(model.audio_head(model.audio_norm(k_all[kb])), dim=-1)
                logp = torch.log_softmax(ka @ k_prompts.T / cfg.keep_temperature, dim=-1)
                loss = loss + cfg.keep_weight * F.kl_div(logp, k_target[kb], reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step()
    return model.eval()


def shift_bridge(model, shift: float):
    """The ensemble with its query gate's bridge shares lowered by ``shift`` (kept in [0.05, 0.95])."""
    from ..models.ensemble import EnsembleModel

    if not shift or not isinstance(model, EnsembleModel) or model.gate is None:
        return model
    g = model.gate.to_dict()
    g.update(lo=float(np.clip(g["lo"] - shift, 0.05, 0.95)), hi=float(np.clip(g["hi"] - shift, 0.05, 0.95)))
    return EnsembleModel(list(model.members), model.weights.tolist(), gate=g).eval()


def prompt_vectors(model) -> np.ndarray | None:
    """General sound descriptions to keep the audio side anchored to: the label bridge's class
    prompts ("the sound of dog", 521 AudioSet classes), None for models without a bridge."""
    from ..models.ensemble import EnsembleModel

    for m in (model.members if isinstance(model, EnsembleModel) else [model]):
        if hasattr(m, "class_vectors"):
            return m.class_vectors.detach().float().cpu().numpy()
    return None


def adapt_model(base, files: list[LibraryFile], text: np.ndarray, group: np.ndarray, cfg: AdaptConfig,
                library: list[LibraryFile] | None = None, on_step=None):
    """The base model with each trainable member's audio head tuned on ``files``; ``library``
    (default ``files``): the windows the shipped behaviour is kept on (see :func:`adapt_member`)."""
    out = copy.deepcopy(base)
    prompts = prompt_vectors(base)
    pooled_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keep_cache: dict[str, np.ndarray] = {}
    for k, i in enumerate(trainable_members(base)):
        head = member(base, i)
        pooling = head.config.pooling
        if pooling not in pooled_cache:
            pooled_cache[pooling] = pooled_inputs(files, pooling)
            keep_cache[pooling] = pooled_cache[pooling][0] if library is None else pooled_inputs(library, pooling)[0]
        pooled, owner = pooled_cache[pooling]
        keep = None if prompts is None or prompts.shape[1] != head.config.text_dim else (keep_cache[pooling], prompts)
        tuned = adapt_member(head, pooled, owner, text, group, cfg, seed=cfg.seed * 1000 + k, keep=keep,
                             on_step=on_step)
        if out is base or not hasattr(out, "members"):
            out = tuned
        else:
            out.members[i] = tuned
    return shift_bridge(out.eval(), cfg.bridge_shift)


# ---------------------------------------------------------------------------------------------
# the hold-out check


def check(base, adapted, files: list[LibraryFile], text: np.ndarray, group: np.ndarray) -> dict:
    """Rank the held-out ``files`` for their own captions with both models (one query per group)."""
    uniq, first = np.unique(group, return_index=True)
    relevant = group[None, :] == uniq[:, None]
    out = {}
    for name, model in (("base", base), ("adapted", adapted)):
        out[name] = rank_metrics(file_scores(model, text[first], files, window_vectors(model, files)), relevant).to_dict()
    return out


# ---------------------------------------------------------------------------------------------
# the public entry point


def adapt_index(index, config: AdaptConfig | None = None, progress: bool = True,
                base_model: str | None = None) -> AdaptReport:
    """Learn from the index's named files; save the adapted model (when it helps) and a report.

    ``base_model``: the model spec to start from (default: the index's own model spec; pass the
    original one when the index already serves an adapted model).  Writes ``<index>/<out_dir>/``:
    a model directory (only when kept, or with ``always_save``) and ``adapt_report.json``
    (always; an earlier run's output there is replaced).  The index itself is not changed:
    serving the adapted model is the index's job (docs/adaptation.md lists the hook)."""
    import torch

    from ..index.name_match import NAMES_FILE, name_vectors, readability
    from ..models import load_model

    cfg = config or AdaptConfig()
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, cfg.threads))
    out = Path(cfg.out_dir)
    out = out if out.is_absolute() else Path(index.path) / out
    spec = str(base_model or (index.model_spec if hasattr(index, "model_spec") else index.config.model))
    base = load_model(spec)
    if (out / REPORT_FILE).is_file():  # an earlier run's output (ours): replaced, never mixed
        import shutil

        shutil.rmtree(out)

    def report(kept: bool, reason: str, n_files: int, named: list, groups: int, chk: dict, model_dir=None):
        r = AdaptReport(kept, reason, spec, model_dir, n_files, len(named), groups, chk,
                        round(time.perf_counter() - t0, 1), json.loads(json.dumps(asdict(cfg))),
                        report_examples(named))
        r.save(out / REPORT_FILE)
        return r

    files = collect_library(index, cfg.caption, None, progress=progress)
    named = [f for f in files if f.named]
    captions = sorted({f.caption.text for f in named})
    if len(named) < cfg.min_named_files or len(captions) < cfg.min_groups:
        short = " and ".join(w for w, bad in (("named files", len(named) < cfg.min_named_files),
                                              ("distinct names", len(captions) < cfg.min_groups)) if bad)
        return report(False, f"too few {short} ({len(named)} named files, {len(captions)} distinct names; "
                             f"need {cfg.min_named_files} and {cfg.min_groups})", len(files), named, len(captions), {})
    cap_vec = caption_vectors(base, captions)
    cap_idx = {c: i for i, c in enumerate(captions)}
    group = np.array([cap_idx[f.caption.text] for f in named])
    text = cap_vec[group]
    if trainable_members(base):
        kept, verdict, chk, model_dir = tune_model(base, named, files, text, group, cfg, out, progress)
    else:  # e.g. the quality profile's fused model: the memory and the names need no heads
        kept, verdict, chk, model_dir = False, f"model {spec!r} has no trained heads to adapt", {}, None
    out.mkdir(parents=True, exist_ok=True)  # what the names mean, for hybrid search (index.name_match)
    context = caption_context([it.path for it in library_items(index)], None, cfg.caption)  # as collect_library
    # names the text model cannot read (Latin species names): hybrid ranks those files as unnamed
    readable = readability(text_expert_name(base))
    fits = np.array([readable(name_words_as_written(f.path)) for f in named], np.float32)
    chk["names"] = unreadable_names(named, fits)
    name_vectors([f.item_id for f in named], cap_vec[group], cfg.memory.threshold, captions=context,
                 text_expert=text_expert_name(base), fits=fits).save(out / NAMES_FILE)
    if cfg.memory.enabled:  # on the base model: the adapted one was trained on every named file, so
        # its ranking of held-out named files would make the memory's check meaningless
        chk["memory"] = name_memory(base, files, group, cap_vec, cfg, out, progress, index)
        verdict += "; name memory " + ("kept" if chk["memory"]["kept"] else "not kept") + f" ({chk['memory']['reason']})"
    return report(kept, verdict, len(files), named, len(captions), chk, model_dir)


def tune_model(base, named: list[LibraryFile], files: list[LibraryFile], text: np.ndarray, group: np.ndarray,
               cfg: AdaptConfig, out: Path, progress: bool) -> tuple[bool, str, dict, str | None]:
    """Tune ``base``'s audio heads on the named files: a trial on part of their names, checked on
    the held-out rest; when it helps, the final model on all of them, saved in ``out``.
    Returns (kept, verdict, check, model folder or None)."""
    train_files = [_capped(f, cfg.max_windows) for f in named]
    held = split_groups(group, cfg.holdout_fraction, cfg.seed)
    fit = ~held
    if progress:
        print(f"adapting on {int(fit.sum())} named files, checking on {int(held.sum())} held-out files",
              file=sys.stderr, flush=True)
    library = [_capped(f, cfg.max_windows) for f in files]  # named and unnamed: what search will rank
    members = len(trainable_members(base))
    steps = planned_steps(int(fit.sum()), members, cfg.epochs, cfg.batch_size, cfg.max_steps)
    with StepBar(steps, progress, "trial training") as bar:
        trial = adapt_model(base, [f for f, k in zip(train_files, fit) if k], text[fit], group[fit], cfg, library,
                            on_step=bar)
    chk = check(base, trial, [f for f, k in zip(named, held) if k], text[held], group[held])
    gain = chk["adapted"]["map"] - chk["base"]["map"]
    chk.update({"gain_map": round(gain, 4), "train_files": int(fit.sum()), "held_out_files": int(held.sum()),
                "held_out_groups": int(len(np.unique(group[held])))})
    kept = gain >= cfg.min_gain
    # a check on a handful of names turns on a query or two: say so, as the memory's check does
    weak = chk["held_out_groups"] < WEAK_CHECK_GROUPS
    few = f" ({chk['held_out_groups']} held-out names, few: a weak check)" if weak else ""
    verdict = (f"held-out mAP {chk['base']['map']:.3f} -> {chk['adapted']['map']:.3f}{few}: "
               + ("kept" if kept else f"gain {gain:+.4f}, below {cfg.min_gain}: the library keeps the base model"))
    if progress:
        print(verdict, file=sys.stderr, flush=True)
    model_dir = None
    if kept or cfg.always_save:
        steps = planned_steps(len(train_files), members, cfg.epochs, cfg.batch_size, cfg.max_steps)
        with StepBar(steps, progress, "final training") as bar:
            final = adapt_model(base, train_files, text, group, cfg, library, on_step=bar)
        final.save_pretrained(out)
        model_dir = str(out)
    return kept, verdict, chk, model_dir


def name_memory(model, files: list[LibraryFile], group: np.ndarray, captions: np.ndarray, cfg: AdaptConfig,
                out: Path, progress: bool, index=None) -> dict:
    """Check the name memory of ``files`` with neighbours by sound in ``cfg.memory.spaces``
    (shipped: aisfx's, :mod:`soundseek.features.sfx`, read from the stored frames when
    ``index``'s expert has an aisfx part; "model": the base model's window vectors; "features":
    the expert's own frames), ``group`` the caption rows of the named files in order, and save
    it as ``out/name_memory.npz`` when the check keeps it (``soundseek.adapt.apply`` installs it
    into the index, whichever model serves), with its anchors (in the sfx space, else in the
    index's features) so that files indexed later join it."""
    from ..features.sfx import sfx_key
    from ..index.name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, centred_embeddings
    from .memory import hear_library

    wins = window_vectors(model, files)
    named_idx = np.flatnonzero([f.named for f in files])
    words: dict[int, str] = {}  # a name's own words (no folders): the check's query, as a user would word it
    for f, g in zip((files[i] for i in named_idx), group):
        words.setdefault(int(g), " ".join(f.caption.name_words or f.caption.text.split()))
    asked = caption_vectors(model, [words.get(g, "") for g in range(len(captions))])
    feats = mean_frames(files)
    audio_expert = index.config.audio_expert if index is not None else None
    expert_key = index.embedder.feature_key if index is not None else ""
    mcfg, sfx, note = hear_library(files, feats, cfg.memory, audio_expert, progress)
    if note and progress:
        print(f"note: {note}", file=sys.stderr, flush=True)
    chk = check_memory(model, files, named_idx, group, captions, mcfg, cfg.seed, wins, queries=asked,
                       features=feats, sfx=sfx)
    if note:
        chk["note"] = note
        chk["reason"] += f" ({note})"
    if sfx is not None:
        chk["unheard_files"] = int((~np.isfinite(sfx).all(1)).sum())
    if progress:
        print(f"name memory: {chk['reason']}: {'kept' if chk['kept'] else 'not kept'}", file=sys.stderr, flush=True)
    if chk["kept"]:
        caption_of = np.full(len(files), -1)
        caption_of[named_idx] = group
        out.mkdir(parents=True, exist_ok=True)
        memory_for(model, files, caption_of, captions, mcfg, wins, features=feats, sfx=sfx).save(out / MEMORY_FILE)
        # files indexed later join by the memory's own sound space where it is one (sfx),
        # else by the expert's features
        space, vecs, key = ("sfx", sfx, sfx_key()) if sfx is not None else ("features", feats, expert_key)
        heard = np.isfinite(vecs).all(1)  # the centre as centred_embeddings takes it: files heard
        if key and heard.any():
            MemoryAnchors(centred_embeddings(vecs)[named_idx], group, vecs[heard].mean(0), key, mcfg.k,
                          mcfg.temperature, space, mcfg.sfx_max_s).save(out / ANCHORS_FILE)
    return chk


def unreadable_names(named: list[LibraryFile], fits: np.ndarray, k: int = 3) -> dict:
    """How many named files have names the text model cannot read (fit 0: Latin scientific names,
    :func:`soundseek.index.name_match.readability`; hybrid search ranks such a file as one
    without a name), with up to ``k`` of those names."""
    low = [" ".join(dict.fromkeys(name_words_as_written(f.path))) for f, x in zip(named, fits.tolist()) if x < 0.5]
    return {"files": len(named), "unreadable": len(low), "examples": list(dict.fromkeys(low))[:k]}


def report_examples(named: list[LibraryFile], k: int = 8) -> list[list[str]]:
    """[file name, caption] of ``k`` files of different captions (lists: as read from JSON), taken
    in turn from each folder and kind of name (UCS names first), so that the report shows how
    each part of the library was read, not only its first folder."""
    groups: dict[tuple, list[LibraryFile]] = {}
    for f in named:
        groups.setdefault(("ucs" not in f.caption.sources, str(Path(f.path).parent)), []).append(f)
    queues = [groups[key] for key in sorted(groups, key=lambda key: key[0])]  # stable: folders in order
    seen, out = set(), []
    while len(out) < k and any(queues):
        for q in queues:
            while q and q[0].caption.text in seen:
                q.pop(0)
            if q and len(out) < k:
                f = q.pop(0)
                seen.add(f.caption.text)
                out.append([Path(f.path).name, f.caption.text])
    return out


def _capped(f: LibraryFile, k: int) -> LibraryFile:
    from .library import spread

    return LibraryFile(f.item_id, f.path, f.caption, [f.windows[i] for i in spread(len(f.windows), k)])
