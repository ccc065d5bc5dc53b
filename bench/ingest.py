"""Benchmark durable ingest into SQLite with the hash chain (DESIGN.md, "Performance").

Three scenarios, one run, one machine:

1. **Store alone**: ``SQLiteStore.append`` in batches of 1,000 (the writer's default batch) for
   500,000 precomputed events of the shared mix (``bench/_peer_record.Mix``: 10 agents, actions,
   tool calls, LLM calls, a few denials and errors). Every event is canonically encoded, hashed,
   chained and committed (WAL, ``synchronous=NORMAL``, the five indexes, a signed checkpoint every
   10,000 rows). Target: >= 150,000 events/s. Wall-clock and CPU time of the process are both
   reported (on a shared machine the CPU figure is the steadier one). The chain is verified
   afterwards (timed too).
2. **End to end**: ``Monitor.record()`` from one thread into a Monitor on a SQLite file with the
   background writer running, then ``flush()``; events/s = events / (first record .. flush
   returned). The queue is sized to hold the whole run, so nothing is dropped (checked). Run
   twice: with the default ``storage.sync_types`` (kill, revive, denial, security, alert: each
   such ``record()`` waits for a commit; the mix has 2 % denials) and with ``sync_types: []``.
3. **record() latency while the writer runs**: per-call ``perf_counter_ns`` p50/p99, SQLite store
   vs the in-memory store, in the same run: saturated (back-to-back calls, the writer competing
   for the GIL) and paced at 10,000 events/s; SQLite with default and with empty ``sync_types``.

Plus a **breakdown** of the append path (where the time goes: canonical encoding, SHA-256 and
the chain hash, building rows, ``executemany`` + commit with and without the secondary indexes)
and, with ``--profile``, ``cProfile`` of ``SQLiteStore.append``.

All Monitors run on ``redline.testing.ManualClock`` following the events' simulated timestamps,
with the config of ``bench/record.py`` (seed 000's ``examples/monitor.yaml`` plus one z-score rule).
Results go to ``bench/results/ingest.json`` and a summary table to stdout.

    .venv/bin/python bench/ingest.py              # the full run (a few minutes on 2 cores)
    .venv/bin/python bench/ingest.py --quick      # 50k events per scenario
    .venv/bin/python bench/ingest.py --profile    # add cProfile of the append path
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from _peer_record import Mix, percentiles
from redline import AgentEvent, Monitor, parse_config
from redline.events import category_of
from redline.store.chain import GENESIS, canonical_payload, chain_hash
from redline.store.memory import MemoryStore
from redline.store.sqlite import _INSERT, _SCHEMA, SQLiteStore
from redline.testing import ManualClock

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "ingest.json"
T0 = 1_700_000_000.0
STORE_TARGET = 150_000.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_events(n: int, rate: float = 10_000.0, start: int = 0) -> list[AgentEvent]:
    mix = Mix(rate, t0=T0)
    out = []
    for i in range(start, start + n):
        t, agent, etype, data, session, cost, latency = mix.spec(i)
        out.append(
            AgentEvent(
                timestamp=t,
                agent=agent,
                event_type=etype,
                data=data,
                session_id=session,
                cost_usd=cost,
                latency_ms=latency,
            )
        )
    return out


def bench_config(storage: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "monitor.yaml").read_text("utf-8"))
    raw["anomaly_detection"] = {
        "rules": [{"name": "cost-spike", "metric": "cost_per_minute", "z_threshold": 3.0}]
    }
    raw["storage"] = storage
    return raw


def fresh_db(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.db"
    for p in tmp.glob(f"{name}.db*"):
        p.unlink()
    return path


# ---------------------------------------------------------------------------------------------
# 1. the store alone
# ---------------------------------------------------------------------------------------------
def store_alone(tmp: Path, events: list[AgentEvent], batch: int) -> dict[str, Any]:
    path = fresh_db(tmp, "store")
    store = SQLiteStore(path)
    gc.collect()
    cpu0 = time.process_time()
    started = time.perf_counter()
    for k in range(0, len(events), batch):
        store.append(events[k : k + batch])
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    t = time.perf_counter()
    report = store.verify()
    verify_s = time.perf_counter() - t
    info = store.info()
    store.close()
    size = sum(p.stat().st_size for p in tmp.glob("store.db*"))
    return {
        "events": len(events),
        "batch": batch,
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
        "us_per_event": elapsed / len(events) * 1e6,
        "cpu_seconds": cpu,
        "events_per_cpu_s": len(events) / cpu if cpu else 0.0,
        "verify_ok": report.ok,
        "verify_seconds": verify_s,
        "verify_events_per_s": report.checked / verify_s if verify_s else 0.0,
        "checkpoints": info["checkpoints"],
        "bytes_per_event": size / len(events),
    }


# ---------------------------------------------------------------------------------------------
# 2. end to end
# ---------------------------------------------------------------------------------------------
def end_to_end(tmp: Path, events: list[AgentEvent], sync_types: list[str] | None) -> dict[str, Any]:
    path = fresh_db(tmp, "e2e")
    storage: dict[str, Any] = {"path": str(path), "queue_size": len(events) + 1}
    if sync_types is not None:
        storage["sync_types"] = sync_types
    config = parse_config(bench_config(storage))
    clock = ManualClock(events[0].timestamp)
    monitor = Monitor(config, clock=clock)
    record = monitor.record
    set_time = clock.set
    gc.collect()
    started = time.perf_counter()
    for k, ev in enumerate(events):
        if k % 1000 == 0:
            set_time(ev.timestamp)
        record(ev)
    recorded = time.perf_counter()
    assert monitor.flush(600), "flush timed out"
    flushed = time.perf_counter()
    stats = monitor.stats()
    monitor.close()
    n = len(events)
    return {
        "sync_types": list(config.storage.sync_types),
        "events": n,
        "record_phase_seconds": recorded - started,
        "record_phase_events_per_s": n / (recorded - started),
        "flush_wait_seconds": flushed - recorded,
        "seconds": flushed - started,
        "events_per_s": n / (flushed - started),
        "written": stats["written"],
        "dropped": stats["dropped"],
        "write_errors": stats["write_errors"],
        "internal_errors": stats["internal_errors"],
    }


# ---------------------------------------------------------------------------------------------
# 3. record() latency with the writer running
# ---------------------------------------------------------------------------------------------
def record_latency(
    tmp: Path,
    backend: str,
    warmup: list[AgentEvent],
    events: list[AgentEvent],
    rate: float | None,
    sync_types: list[str] | None = None,
) -> dict[str, Any]:
    if backend == "sqlite":
        path = fresh_db(tmp, f"lat-{rate or 'max'}")
        storage: dict[str, Any] = {"path": str(path)}
        store = None
    else:
        storage = {}
        store = MemoryStore(max_events=len(warmup) + len(events) + 10)
    storage["queue_size"] = len(warmup) + len(events) + 1
    if sync_types is not None:
        storage["sync_types"] = sync_types
    config = parse_config(bench_config(storage))
    clock = ManualClock(warmup[0].timestamp)
    monitor = Monitor(config, clock=clock, store=store)
    record = monitor.record
    set_time = clock.set
    for ev in warmup:
        set_time(ev.timestamp)
        record(ev)
    monitor.flush(600)
    gc.collect()
    pc = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    if rate is None:
        for ev in events:
            set_time(ev.timestamp)
            a = pc()
            record(ev)
            b = pc()
            append(b - a)
    else:
        gap = int(1e9 / rate)
        due = pc()
        for ev in events:
            due += gap
            while pc() < due:
                pass
            set_time(ev.timestamp)
            a = pc()
            record(ev)
            b = pc()
            append(b - a)
    monitor.flush(600)
    stats = monitor.stats()
    monitor.close()
    result = percentiles(samples)
    result.update(
        backend=backend,
        sync_types="default" if sync_types is None else sync_types,
        rate=rate or "saturated",
        dropped=stats["dropped"],
        written=stats["written"],
        internal_errors=stats["internal_errors"],
    )
    return result


# ---------------------------------------------------------------------------------------------
# where the time goes
# ---------------------------------------------------------------------------------------------
def breakdown(tmp: Path, events: list[AgentEvent], batch: int) -> dict[str, Any]:
    """Each stage of ``SQLiteStore.append`` timed alone (the same code, unrolled)."""
    n = len(events)
    out: dict[str, Any] = {"events": n}
    sha = hashlib.sha256

    t = time.perf_counter()
    payloads = [canonical_payload(e) for e in events]
    out["encode_us"] = (time.perf_counter() - t) / n * 1e6

    t = time.perf_counter()
    digests = [sha(p).hexdigest() for p in payloads]
    out["payload_sha256_us"] = (time.perf_counter() - t) / n * 1e6

    t = time.perf_counter()
    prev = GENESIS
    hashes = []
    for seq, d in enumerate(digests, 1):
        prev = chain_hash(seq, prev, d)
        hashes.append(prev)
    out["chain_hash_us"] = (time.perf_counter() - t) / n * 1e6

    t = time.perf_counter()
    rows = []
    prev = GENESIS
    for seq, (e, p, d, h) in enumerate(zip(events, payloads, digests, hashes, strict=True), 1):
        rows.append(
            (seq, e.timestamp, e.agent, e.event_type, category_of(e.event_type), e.session_id,
             e.user, p, d, prev, h)
        )  # fmt: skip
        prev = h
    out["build_rows_us"] = (time.perf_counter() - t) / n * 1e6

    def insert(name: str, schema: str) -> float:
        path = fresh_db(tmp, name)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(schema)
        t = time.perf_counter()
        for k in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            conn.executemany(_INSERT, rows[k : k + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t
        conn.close()
        return elapsed / n * 1e6

    out["sqlite_insert_commit_us"] = insert("bd-full", _SCHEMA)
    no_index = (
        _SCHEMA.split("CREATE INDEX")[0]
        + _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS checkpoints") :]
    )
    out["sqlite_insert_commit_no_secondary_indexes_us"] = insert("bd-noidx", no_index)
    out["python_side_us"] = (
        out["encode_us"] + out["payload_sha256_us"] + out["chain_hash_us"] + out["build_rows_us"]
    )
    out["total_us"] = out["python_side_us"] + out["sqlite_insert_commit_us"]
    out["implied_events_per_s"] = 1e6 / out["total_us"]
    return out


def profile_append(tmp: Path, events: list[AgentEvent], batch: int) -> str:
    path = fresh_db(tmp, "profile")
    store = SQLiteStore(path)
    profiler = cProfile.Profile()
    profiler.enable()
    for k in range(0, len(events), batch):
        store.append(events[k : k + batch])
    profiler.disable()
    store.close()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(12)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50k events per scenario")
    parser.add_argument("--events", type=int, default=500_000, help="store-alone events")
    parser.add_argument("--e2e-events", type=int, default=300_000)
    parser.add_argument("--latency-events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the append path")
    parser.add_argument("--dir", default=None, help="where to put the databases (default: temp)")
    args = parser.parse_args()
    if args.quick:
        args.events = args.e2e_events = args.latency_events = 50_000

    results: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "command": " ".join([".venv/bin/python", "bench/ingest.py", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmpdir:
        tmp = Path(tmpdir)
        log(f"building {args.events:,} events")
        events = make_events(args.events)

        log("1. store alone")
        results["store_alone"] = store_alone(tmp, events, args.batch)
        log(f"   {results['store_alone']['events_per_s']:,.0f} events/s")

        log("   breakdown")
        results["breakdown"] = breakdown(tmp, events[:100_000], args.batch)
        if args.profile:
            log("   cProfile")
            results["profile"] = profile_append(tmp, events[:100_000], args.batch)

        log("2. end to end")
        e2e = make_events(args.e2e_events)
        results["end_to_end"] = [end_to_end(tmp, e2e, None), end_to_end(tmp, e2e, [])]
        for row in results["end_to_end"]:
            log(f"   {row['events_per_s']:,.0f} events/s (sync_types {row['sync_types']})")
        del e2e

        log("3. record() latency")
        warm = make_events(20_000)
        lat = make_events(args.latency_events, start=20_000)
        paced = lat[: min(len(lat), 30_000)]
        runs: list[tuple[str, list[AgentEvent], float | None, list[str] | None]] = [
            ("memory", lat, None, None),
            ("sqlite", lat, None, None),
            ("sqlite", lat, None, []),
            ("memory", paced, 10_000.0, None),
            ("sqlite", paced, 10_000.0, None),
            ("sqlite", paced, 10_000.0, []),
        ]
        results["record_latency"] = [
            record_latency(tmp, backend, warm, evs, rate, sync) for backend, evs, rate, sync in runs
        ]
        results["machine"]["loadavg_at_end"] = os.getloadavg()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"machine: nproc={m['nproc']} python={m['python']} sqlite={m['sqlite']}")
    print(f"load average: start {m['loadavg_at_start']}, end {m['loadavg_at_end']}")
    s = r["store_alone"]
    verdict = "PASS" if s["events_per_s"] >= STORE_TARGET else "FAIL"
    print(
        f"store alone  : {s['events_per_s']:>10,.0f} events/s ({s['events']:,} in batches of "
        f"{s['batch']:,}; {s['us_per_event']:.2f} us/event; target >= 150,000: {verdict})"
    )
    print(
        f"               {s['events_per_cpu_s']:,.0f} events per CPU-second of this process "
        f"(wall {s['seconds']:.1f}s, CPU {s['cpu_seconds']:.1f}s)"
    )
    print(
        f"               verify {s['verify_events_per_s']:,.0f} rows/s (ok={s['verify_ok']}), "
        f"{s['bytes_per_event']:.0f} bytes/event on disk"
    )
    for e in r["end_to_end"]:
        print(
            f"end to end   : {e['events_per_s']:>10,.0f} events/s ({e['events']:,} events, "
            f"sync_types {e['sync_types']}; record phase {e['record_phase_events_per_s']:,.0f}/s, "
            f"then flush {e['flush_wait_seconds']:.2f}s; dropped {e['dropped']})"
        )
    b = r["breakdown"]
    print(
        "append path  : "
        + ", ".join(
            f"{k.removesuffix('_us')} {b[k]:.2f}"
            for k in (
                "encode_us",
                "payload_sha256_us",
                "chain_hash_us",
                "build_rows_us",
                "sqlite_insert_commit_us",
                "sqlite_insert_commit_no_secondary_indexes_us",
            )
        )
        + " (us/event)"
    )
    for row in r["record_latency"]:
        print(
            f"record() {row['backend']:<6} {row['rate']!s:>9} sync_types {row['sync_types']!s:<7}:"
            f" p50 {row['p50_us']:.2f} us, p99 {row['p99_us']:.2f} us, mean "
            f"{row['mean_us']:.2f} us, max {row['max_us']:.0f} us (n={row['n']:,}, "
            f"dropped {row['dropped']})"
        )
    if "profile" in r:
        print(r["profile"])


if __name__ == "__main__":
    main()
