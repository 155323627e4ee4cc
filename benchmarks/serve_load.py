"""Load check for the soundseek web server: N concurrent clients on 127.0.0.1.

The server runs in its **own process** (``python -m soundseek.server``, started here on a free
loopback port with ``--index``, or an already running one given with ``--url``); the clients
run in this process, as asyncio tasks with one keep-alive connection each and a minimal HTTP/1.1
client (so the load generator itself costs little CPU).  Each client sends requests back to
back: a mix of text searches, "more like this" and byte ranges of audio files, like the page
does.  Reports throughput, latency percentiles, errors and the server's memory after each round.

    PYTHONPATH=src python benchmarks/serve_load.py --index demo-index --clients 1,8,50 \\
        --rounds 3 --requests 3000 --max-seconds 60 --out /tmp/serve-load.json

Bounded: every round stops after ``--requests`` requests or ``--max-seconds`` seconds, and
only loopback addresses are ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlparse

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)

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
#: appended to the queries so that few requests repeat exactly (128 distinct texts)
MODIFIERS = ["", "far away", "close up", "in a small room", "outdoors", "loud", "quiet", "at night"]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class LoadConfig:
    clients: int = 8
    requests: int = 2000
    max_seconds: float = 60.0
    text_ratio: float = 0.6
    similar_ratio: float = 0.3  # the rest: audio byte ranges
    k: int = 10
    seed: int = 0


@dataclass
class RoundResult:
    clients: int
    round: int
    wall_s: float
    requests: int
    errors: int
    throughput_rps: float
    latency_ms: dict = field(default_factory=dict)
    server_rss_mb: float | None = None
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None
    error_samples: list = field(default_factory=list)


# ---- a small HTTP/1.1 keep-alive client ------------------------------------------------------------


class HttpConn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str, headers: dict | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._get(target, headers or {}), timeout)

    async def _get(self, target: str, headers: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode("latin-1"))
        line = await self.reader.readline()
        if not line:
            self.close()
            raise ConnectionError("connection closed by the server")
        status = int(line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                body += await self.reader.readexactly(size)
                await self.reader.readline()
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---- the load ------------------------------------------------------------------------------------


def _percentiles(xs: list[float]) -> dict:
    if not xs:
        return {}
    s = sorted(xs)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 1)

    return {"n": len(s), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(s[-1], 1),
            "mean": round(statistics.fmean(s), 1)}


async def _discover(host: str, port: int, k: int) -> dict:
    """Index facts and item ids (with file sizes) to build requests from."""
    c = HttpConn(host, port)
    status, body = await c.get("/api/health")
    if status != 200:
        raise SystemExit(f"server not healthy: HTTP {status} {body[:200]!r}")
    health = json.loads(body)
    ids: set = set()
    if health["has_text_model"]:
        for q in QUERIES:
            status, body = await c.get(f"/api/search?q={quote(q)}&k=50")
            if status == 200:
                ids.update(h["id"] for h in json.loads(body)["results"])
    sizes = {}
    for i in sorted(ids)[:200]:
        status, body = await c.get(f"/api/items/{i}")
        if status == 200 and json.loads(body).get("size_bytes"):
            sizes[i] = json.loads(body)["size_bytes"]
    c.close()
    if not sizes:
        raise SystemExit("no items found to query (an index without a text model?)")
    return {"health": health, "sizes": sizes}


async def run_round(host: str, port: int, cfg: LoadConfig, facts: dict) -> tuple[dict, list[str], float]:
    ids = sorted(facts["sizes"])
    text_ok = facts["health"]["has_text_model"]
    lat: dict[str, list[float]] = {"text": [], "similar": [], "audio": []}
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + cfg.max_seconds

    async def client(n: int) -> None:
        nonlocal issued
        rng = random.Random(cfg.seed * 100_003 + n)
        conn = HttpConn(host, port)
        try:
            while time.perf_counter() < deadline and issued < cfg.requests:
                issued += 1
                x = rng.random()
                headers = None
                if text_ok and x < cfg.text_ratio:
                    kind = "text"
                    q = f"{rng.choice(QUERIES)} {rng.choice(MODIFIERS)}".strip()
                    target = f"/api/search?q={quote(q)}&k={cfg.k}"
                elif x < cfg.text_ratio + cfg.similar_ratio or not text_ok:
                    kind = "similar"
                    target = f"/api/items/{rng.choice(ids)}/similar?k={cfg.k}"
                else:
                    kind = "audio"
                    i = rng.choice(ids)
                    start = rng.randrange(max(1, facts["sizes"][i] - 1))
                    target = f"/api/items/{i}/audio"
                    headers = {"Range": f"bytes={start}-{start + 65535}"}
                t0 = time.perf_counter()
                try:
                    status, body = await conn.get(target, headers)
                    ok = status == (206 if kind == "audio" else 200)
                    why = f"{kind}: HTTP {status} {body[:100]!r}"
                except (OSError, ConnectionError, asyncio.TimeoutError, ValueError, IndexError) as e:
                    conn.close()
                    ok, why = False, f"{kind}: {e!r}"
                ms = (time.perf_counter() - t0) * 1000
                if ok:
                    lat[kind].append(ms)
                else:
                    errors.append(why)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(cfg.clients)))
    return lat, errors, time.perf_counter() - t0


# ---- the server process ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "soundseek.server", "--index", index, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    t0 = time.time()
    while time.time() - t0 < 120:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start in 120 s")


def _proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _proc_stats(pid: int | None) -> tuple[float | None, float | None]:
    """(RSS MB, CPU seconds) of a process and its children (workers), from /proc (Linux)."""
    if not pid:
        return None, None
    rss_kb, ticks, seen = 0, 0, False
    for p in _proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    if not seen:
        return None, None
    return round(rss_kb / 1024, 1), round(ticks / os.sysconf("SC_CLK_TCK"), 2)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="index folder: start `python -m soundseek.server` on it (own process)")
    src.add_argument("--url", help="an already running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--server-pid", type=int, help="with --url: its process id, to report its memory")
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for the started server")
    p.add_argument("--clients", default="1,8,50", help="comma-separated client counts, e.g. 1,8,50")
    p.add_argument("--rounds", type=int, default=1, help="rounds per client count (memory should stay flat)")
    p.add_argument("--requests", type=int, default=LoadConfig.requests, help="at most this many per round")
    p.add_argument("--max-seconds", type=float, default=LoadConfig.max_seconds, help="at most this long per round")
    p.add_argument("--text-ratio", type=float, default=LoadConfig.text_ratio)
    p.add_argument("--similar-ratio", type=float, default=LoadConfig.similar_ratio)
    p.add_argument("--k", type=int, default=LoadConfig.k)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=200, help="requests (8 clients) before measuring")
    p.add_argument("--out", help="also write the JSON result here")
    a = p.parse_args(argv)

    proc = None
    if a.index:
        proc, port = start_server(a.index, a.server_arg)
        host, pid = "127.0.0.1", proc.pid
    else:
        u = urlparse(a.url)
        if u.hostname not in LOOPBACK:
            raise SystemExit(f"refusing to load-test {u.hostname}: only loopback servers")
        host, port, pid = u.hostname, u.port or 80, a.server_pid
    try:
        load = os.getloadavg()
        facts = asyncio.run(_discover(host, port, a.k))
        if a.warmup:
            warm = LoadConfig(8, a.warmup, 120, a.text_ratio, a.similar_ratio, a.k, a.seed + 999)
            asyncio.run(run_round(host, port, warm, facts))
        rounds = []
        for n in [int(x) for x in a.clients.split(",") if x.strip()]:
            for r in range(a.rounds):
                cfg = LoadConfig(n, a.requests, a.max_seconds, a.text_ratio, a.similar_ratio, a.k, a.seed + r)
                _, cpu0 = _proc_stats(pid)
                c0 = time.process_time()
                lat, errors, wall = asyncio.run(run_round(host, port, cfg, facts))
                rss, cpu1 = _proc_stats(pid)
                done = sum(len(v) for v in lat.values())
                res = RoundResult(
                    clients=n, round=r + 1, wall_s=round(wall, 2), requests=done + len(errors), errors=len(errors),
                    throughput_rps=round(done / wall, 1) if wall else 0.0,
                    latency_ms={"all": _percentiles([x for v in lat.values() for x in v]),
                                **{k: _percentiles(v) for k, v in lat.items()}},
                    server_rss_mb=rss, server_cpu_s=round(cpu1 - cpu0, 2) if cpu1 is not None else None,
                    client_cpu_s=round(time.process_time() - c0, 2), error_samples=errors[:5],
                )
                rounds.append(res)
                al = res.latency_ms["all"]
                print(f"clients {n:3d} round {r + 1}: {res.throughput_rps:7.1f} req/s  p50 {al.get('p50')} ms  "
                      f"p99 {al.get('p99')} ms  errors {res.errors}  server RSS {rss} MB", file=sys.stderr)
        out = {
            "url": f"http://{host}:{port}",
            "index_items": facts["health"]["items"],
            "has_text_model": facts["health"]["has_text_model"],
            "mix": {"text": a.text_ratio, "similar": a.similar_ratio, "audio_range": round(1 - a.text_ratio - a.similar_ratio, 3)},
            "machine": f"{cpu_name()}, {_cpu_count()} CPU, {platform.system()} {platform.release()}",
            "load_average_before": [round(x, 2) for x in load],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "rounds": [asdict(r) for r in rounds],
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
