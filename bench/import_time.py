"""How long ``import redline`` takes, and which modules it costs (issue 12: target under 150 ms).

Every ``redline`` command and every agent start pays the import, so it should cost only what is
used. Each scenario runs in a fresh interpreter ``--runs`` times (median reported) under
``python -X importtime``, beside ``python -c pass`` in the same run as the baseline (the
interpreter's own start-up: ``site``, ``encodings``). Reported per scenario:

* ``wall``: the process's wall time, start to exit, minus nothing (what a user waits);
* ``over baseline``: ``wall`` minus the baseline's median wall time;
* ``imports``: the sum of the top-level cumulative times ``-X importtime`` reports, beyond those
  the baseline has (the import cost itself, without interpreter start-up and teardown).

Then the modules that cost the most in the first scenario (median cumulative microseconds), so a
regression names its culprit. ``--src DIR`` measures another checkout's ``src`` (before/after).

    .venv/bin/python bench/import_time.py
    .venv/bin/python bench/import_time.py --runs 15 --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict

SCENARIOS: dict[str, str] = {
    "import redline": "import redline",
    "from redline import Monitor, AgentEvent, load_config": (
        "from redline import Monitor, AgentEvent, load_config"
    ),
    "Monitor() (memory store)": "from redline import Monitor; Monitor().close()",
}
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def run_once(code: str, env: dict[str, str]) -> tuple[float, dict[str, int], int]:
    """(wall ms, module → cumulative µs, sum of top-level cumulative µs) for one interpreter."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = (time.perf_counter() - start) * 1000.0
    cumulative: dict[str, int] = {}
    top = 0
    for line in done.stderr.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        cum, indent, name = int(m.group(2)), len(m.group(3)), m.group(4)
        cumulative[name] = max(cumulative.get(name, 0), cum)
        if indent == 1:
            top += cum
    return wall, cumulative, top


def measure(code: str, runs: int, env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    """Median wall ms, median top-level import µs, and each module's median cumulative µs."""
    walls: list[float] = []
    tops: list[float] = []
    per_module: defaultdict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        wall, cumulative, top = run_once(code, env)
        walls.append(wall)
        tops.append(top)
        for name, cum in cumulative.items():
            per_module[name].append(cum)
    modules = {name: statistics.median(v + [0] * (runs - len(v))) for name, v in per_module.items()}
    return statistics.median(walls), statistics.median(tops), modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="interpreters per scenario (median)")
    parser.add_argument("--top", type=int, default=15, help="modules listed for the first scenario")
    parser.add_argument("--src", help="measure this source tree instead of the installed one")
    parser.add_argument("--pure", action="store_true", help="set REDLINE_PURE_PYTHON=1")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (args.src, env.get("PYTHONPATH")) if p)
    env.pop("REDLINE_PURE_PYTHON", None)
    if args.pure:
        env["REDLINE_PURE_PYTHON"] = "1"
    subprocess.run([sys.executable, "-c", "import redline"], env=env, check=True)  # warm caches

    base_wall, base_top, _ = measure("pass", args.runs, env)
    print(
        f"python {sys.version.split()[0]}, {args.runs} runs each, median; src: "
        f"{args.src or 'installed'}{', pure Python' if args.pure else ''}"
    )
    print(f"{'scenario':<56}{'wall ms':>9}{'over baseline':>15}{'imports ms':>12}")
    print(f"{'python -c pass (baseline)':<56}{base_wall:>9.1f}{0.0:>15.1f}{0.0:>12.1f}")
    first: dict[str, float] = {}
    for i, (label, code) in enumerate(SCENARIOS.items()):
        wall, top, modules = measure(code, args.runs, env)
        if i == 0:
            first = modules
        imports_ms = (top - base_top) / 1000.0
        print(f"{label:<56}{wall:>9.1f}{wall - base_wall:>15.1f}{imports_ms:>12.1f}")
    print()
    print(f"top modules under `{next(iter(SCENARIOS))}` (median cumulative ms)")
    for name, cum in sorted(first.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {name:<60}{cum / 1000.0:>8.1f}")


if __name__ == "__main__":
    main()
