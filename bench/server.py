"""Benchmark the HTTP server: batch ingest through HTTP, and ``GET /v1/check`` under that load.

One run, one machine, two processes: the server (``create_app`` + uvicorn, one worker, a
``Monitor`` on a SQLite file with the default config: windows, detectors, hash-chained writer)
and this load generator. Targets (the server issue): batch ingest >= 30,000 events/s with
batches of 500; ``/v1/check`` well under a millisecond of server time.

1. **Ingest**: ``--connections`` threads each POST pre-encoded JSON batches of 500 events (the
   shared mix of ``bench/_peer_record.Mix``: 10 agents, actions, tool calls, LLM calls, a few
   denials and errors) as fast as the server answers. Events/s = events accepted / wall time
   from the first request to the last response; then the time until the writer has committed
   everything (``/v1/stats``: ``queued == 0``) gives the durable rate.
2. **Check latency under load**: one more thread calls ``GET /v1/check?agent=...`` back to back
   on a keep-alive connection while the ingest runs: round-trip p50/p99, and the server's own
   time from the ``Server-Timing`` header (authentication, rate limit and the lookup).
3. **Check latency idle**: the same with nothing else running.

Each scenario runs twice, on a fresh server each time: with the default ``storage.sync_types``
(``kill``, ``revive``, ``denial``, ``security``, ``alert``: each such event is committed before
the request returns, one commit each, as ``record()`` does; the mix has 2 % denials) and with
``sync_types: []``. Results go to ``bench/results/server.json`` and a table to stdout.

    .venv/bin/python bench/server.py                      # 200 batches (100,000 events) x 2
    .venv/bin/python bench/server.py --quick              # 40 batches
    .venv/bin/python bench/server.py --sync-types none    # one configuration only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _peer_record import Mix

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
INGEST = "bench-ingest-0123456789abcdef"
READ = "bench-read-0123456789abcdef"
BATCH = 500

_TIMING = re.compile(r"dur=([0-9.]+)")


def serve(port: int, db: str, sync: str) -> None:
    """The server process: a Monitor on SQLite behind uvicorn (one worker)."""
    from redline import Monitor, parse_config
    from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

    storage: dict[str, Any] = {"path": db, "queue_size": 1_000_000}
    if sync == "none":
        storage["sync_types"] = []
    monitor = Monitor(parse_config({"storage": storage}))
    config = ServerConfig(
        port=port,
        rate_limit_per_minute=10_000_000,
        tokens=[
            TokenConfig(name="bench-ingest", role="ingest", token=INGEST),
            TokenConfig(name="bench-read", role="read", token=READ),
        ],
    )
    try:
        RedlineServer(create_app(monitor, config, admin_token=""), "127.0.0.1", port).run()
    finally:
        monitor.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(n_batches: int) -> list[bytes]:
    """Pre-encoded request bodies: the shared event mix at 30,000 events/s from now."""
    mix = Mix(30_000.0, t0=time.time(), seed=11)
    out = []
    for b in range(n_batches):
        batch = []
        for i in range(b * BATCH, (b + 1) * BATCH):
            t, agent, etype, data, session, cost, latency = mix.spec(i)
            event: dict[str, Any] = {
                "timestamp": t, "agent": agent, "event_type": etype, "data": data,
                "session_id": session,
            }  # fmt: skip
            if cost is not None:
                event["cost_usd"] = cost
            if latency is not None:
                event["latency_ms"] = latency
            batch.append(event)
        out.append(json.dumps(batch).encode())
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p99/max/mean of millisecond samples."""
    ordered = sorted(x for x in samples if not math.isnan(x))
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "mean": float("nan")}
    n = len(ordered)
    return {
        "p50": ordered[n // 2],
        "p99": ordered[min(n - 1, int(0.99 * n))],
        "max": ordered[-1],
        "mean": sum(ordered) / n,
    }


def check_loop(url: str, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Back-to-back checks on one keep-alive connection: (round trip ms, server ms)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ}"}) as c:
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            r = c.get("/v1/check", params={"agent": f"agent-{i % 10:03d}"})
            rtt = (time.perf_counter() - t) * 1000
            m = _TIMING.search(r.headers.get("server-timing", ""))
            out.append((rtt, float(m.group(1)) if m else float("nan")))
            i += 1


def ingest(url: str, payloads: list[bytes], connections: int) -> dict[str, Any]:
    lock = threading.Lock()
    queue = list(payloads)
    accepted = 0
    errors = 0

    def worker() -> None:
        nonlocal accepted, errors
        headers = {"Authorization": f"Bearer {INGEST}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                r = c.post("/v1/events", content=body)
                with lock:
                    if r.status_code == 200:
                        accepted += r.json()["accepted"] + r.json()["repaired"]
                    else:
                        errors += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"accepted": accepted, "errors": errors, "seconds": elapsed, "started": started}


def run_scenario(sync: str, n_batches: int, connections: int) -> dict[str, Any]:
    """Start a server whose monitor has ``sync`` sync_types, load it, measure, stop it."""
    tmp = tempfile.mkdtemp(prefix="redline-bench-server-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("REDLINE_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), f"{tmp}/events.db", sync], env=env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        payloads = bodies(n_batches + 4)
        ingest(url, payloads[:4], 1)  # warm up: imports, the SQLite file, the first windows

        idle: list[tuple[float, float]] = []
        stop = threading.Event()
        t = threading.Thread(target=check_loop, args=(url, stop, idle))
        t.start()
        time.sleep(2.0)
        stop.set()
        t.join()

        loaded: list[tuple[float, float]] = []
        stop = threading.Event()
        checker = threading.Thread(target=check_loop, args=(url, stop, loaded))
        checker.start()
        result = ingest(url, payloads[4:], connections)
        stop.set()
        checker.join()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ}"}) as c:
            while c.get("/v1/stats").json()["queued"] > 0:
                time.sleep(0.02)
            durable = time.perf_counter() - result["started"]
            stats = c.get("/v1/stats").json()
    finally:
        proc.terminate()
        proc.wait(30)
    events = result["accepted"]
    return {
        "sync_types": sync,
        "events": events,
        "errors": result["errors"],
        "ingest_events_per_second": events / result["seconds"],
        "durable_events_per_second": events / durable,
        "written": stats["written"],
        "dropped": stats["dropped"],
        "check_idle": {
            "rtt_ms": percentiles([x[0] for x in idle]),
            "server_ms": percentiles([x[1] for x in idle]),
            "n": len(idle),
        },
        "check_under_load": {
            "rtt_ms": percentiles([x[0] for x in loaded]),
            "server_ms": percentiles([x[1] for x in loaded]),
            "n": len(loaded),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 batches instead of 200")
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument(
        "--sync-types",
        choices=("default", "none", "both"),
        default="both",
        help="storage.sync_types of the server's monitor: the default list, none, or both runs",
    )
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "DB", "SYNC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return

    n_batches = args.batches or (40 if args.quick else 200)
    load_before = os.getloadavg()
    syncs = ("default", "none") if args.sync_types == "both" else (args.sync_types,)
    runs = [run_scenario(sync, n_batches, args.connections) for sync in syncs]
    out = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "batches": n_batches,
        "batch_size": BATCH,
        "connections": args.connections,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(out, indent=2), encoding="utf-8")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print(
        f"server benchmark: {n_batches} batches of {BATCH} events, {args.connections} "
        f"connections, one uvicorn worker; load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    for run in runs:
        rate = run["ingest_events_per_second"]
        print(f"\n  sync_types: {run['sync_types']}")
        print(f"  {'measure':<46}{'value':>18}  target")
        print(
            f"  {'ingest through HTTP (events/s)':<46}{rate:>18,.0f}  >= 30,000 {verdict(rate >= 30_000)}"
        )
        durable = run["durable_events_per_second"]
        print(f"  {'durable: until the writer committed all (events/s)':<46}{durable:>18,.0f}")
        print(f"  {'errors / dropped':<46}{run['errors']:>11} / {run['dropped']:<5}")
        for name, key in (
            ("check idle", "check_idle"),
            ("check under ingest load", "check_under_load"),
        ):
            rtt, srv, n = run[key]["rtt_ms"], run[key]["server_ms"], run[key]["n"]
            label = f"{name}: round trip p50/p99 (ms)"
            print(f"  {label:<46}{rtt['p50']:>8.3f} / {rtt['p99']:<8.3f} ({n:,} calls)")
            label = f"{name}: server time p50/p99 (ms)"
            ok = srv["p99"] < 1.0
            print(f"  {label:<46}{srv['p50']:>8.3f} / {srv['p99']:<8.3f} p99 < 1 ms {verdict(ok)}")


if __name__ == "__main__":
    main()
