"""Load check for the soundseek web server: N concurrent clients on 127.0.0.1.

Starts the server in this process on a free loopback port (or uses ``--url`` of one already
running on loopback), sends a bounded mix of text searches and "more like this" (audio by
id) requests, and reports latency percentiles, throughput and errors.

    PYTHONPATH=src python benchmarks/serve_load.py --index demo-index --clients 4 --requests 400

Bounded twice: at most ``--requests`` requests and ``--max-seconds`` seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import socket
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlparse

import httpx

QUERIES = [
    "a dog barking",
    "rain falling on a roof",
    "a baby crying",
    "church bells ringing",
    "a clock ticking",
    "birds chirping in the morning",
    "someone knocking on a door",
    "a car horn honking",
    "waves crashing on the shore",
    "a rooster crowing",
    "footsteps on a wooden floor",
    "glass breaking",
    "a helicopter flying overhead",
    "people clapping",
    "a cat meowing",
    "thunder during a storm",
]


@dataclass
class LoadConfig:
    clients: int = 4
    requests: int = 400
    max_seconds: float = 60.0
    text_ratio: float = 0.5
    k: int = 10
    seed: int = 0


@dataclass
class LoadResult:
    config: LoadConfig
    url: str
    index_items: int
    has_text_model: bool
    wall_s: float
    requests: int
    errors: int
    throughput_rps: float
    latency_ms: dict = field(default_factory=dict)
    error_samples: list = field(default_factory=list)
    machine: str = ""
    date: str = ""


def _percentiles(xs: list[float]) -> dict:
    if not xs:
        return {}
    s = sorted(xs)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 2)

    return {"n": len(s), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(s[-1], 2),
            "mean": round(statistics.fmean(s), 2)}


def run_load(url: str, cfg: LoadConfig) -> LoadResult:
    """Hammer ``url`` (loopback only) with ``cfg.clients`` threads; returns the measurements."""
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load-test {host}: only loopback servers")
    with httpx.Client(base_url=url, timeout=60) as c:
        health = c.get("/api/health").json()
        ids: list = []
        if health["has_text_model"]:
            for q in QUERIES[:4]:
                ids += [h["id"] for h in c.get("/api/search", params={"q": q, "k": 50}).json()["results"]]
        ids = sorted(set(ids), key=str)
    if not ids and cfg.text_ratio < 1:
        raise SystemExit("no item ids found for audio queries (index without a text model?)")

    lock = threading.Lock()
    issued = 0
    lat: dict[str, list[float]] = {"text": [], "similar": []}
    errors: list[str] = []
    deadline = time.perf_counter() + cfg.max_seconds

    def client(n: int) -> None:
        nonlocal issued
        rng = random.Random(cfg.seed * 1000 + n)
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.perf_counter() < deadline:
                with lock:
                    if issued >= cfg.requests:
                        return
                    issued += 1
                text = health["has_text_model"] and rng.random() < cfg.text_ratio
                t0 = time.perf_counter()
                try:
                    if text:
                        r = c.get("/api/search", params={"q": rng.choice(QUERIES), "k": cfg.k})
                    else:
                        r = c.get(f"/api/items/{rng.choice(ids)}/similar", params={"k": cfg.k})
                    ok = r.status_code == 200
                    why = f"HTTP {r.status_code}: {r.text[:120]}"
                except httpx.HTTPError as e:
                    ok, why = False, repr(e)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        lat["text" if text else "similar"].append(ms)
                    else:
                        errors.append(why)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(cfg.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = len(lat["text"]) + len(lat["similar"])
    return LoadResult(
        config=cfg,
        url=url,
        index_items=health["items"],
        has_text_model=health["has_text_model"],
        wall_s=round(wall, 2),
        requests=done + len(errors),
        errors=len(errors),
        throughput_rps=round(done / wall, 2) if wall else 0.0,
        latency_ms={
            "all": _percentiles(lat["text"] + lat["similar"]),
            "text": _percentiles(lat["text"]),
            "similar": _percentiles(lat["similar"]),
        },
        error_samples=errors[:5],
        machine=f"{platform.machine()} {platform.processor() or ''} {_cpu_count()} CPU".strip(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_server(index_path: str):
    """uvicorn in a background thread on a free loopback port; returns (url, stop)."""
    import uvicorn

    from soundseek.server import create_app

    app = create_app(index_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started:
        if not thread.is_alive() or time.time() - t0 > 60:
            raise RuntimeError("server did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="index folder: start a server on it in this process")
    src.add_argument("--url", help="an already running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=LoadConfig.clients)
    p.add_argument("--requests", type=int, default=LoadConfig.requests)
    p.add_argument("--max-seconds", type=float, default=LoadConfig.max_seconds)
    p.add_argument("--text-ratio", type=float, default=LoadConfig.text_ratio)
    p.add_argument("--k", type=int, default=LoadConfig.k)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON result here")
    a = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    cfg = LoadConfig(a.clients, a.requests, a.max_seconds, a.text_ratio, a.k, a.seed)
    stop = None
    url = a.url
    if a.index:
        url, stop = start_server(a.index)
    try:
        result = run_load(url, cfg)
    finally:
        if stop:
            stop()
    text = json.dumps(asdict(result), indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
