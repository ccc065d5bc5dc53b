"""``make demo`` tells the same story, with the same numbers, on every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
# Wall-clock times and their ages, and the export's digest (it covers them), differ by design.
_VARIES = re.compile(
    r"\d{4}-\d\d-\d\dT[\d:.]+Z|\b\d\d:\d\d:\d\d\b|\(\d+[smhd] ago\)|\b\d+[smhd] ago\b|sha256 \w+"
)


def _run(cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("REDLINE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_demo_is_reproducible_and_explains_itself(tmp_path: Path) -> None:
    first, second = _run(tmp_path), _run(tmp_path)  # the demo starts afresh in demo-out/
    assert _VARIES.sub("", first) == _VARIES.sub("", second)
    assert first.index("The scenario") < first.index("What Redline saw and did")
    assert "min: minutes into the ten-minute run" in first
    # recorded and stored are reconciled, and "0 while killed" is explained, not left bare.
    assert re.search(
        r"The agents recorded [\d,]+ events; the store holds [\d,]+: those plus \d+", first
    )
    flat = " ".join(first.split())
    assert "Events recorded while killed: 0, because sales-agent called check() before" in flat
    # Every table reports the same window: the run's last five minutes.
    assert "Metrics (the run's last 5 minutes)" in first
    assert "(window 300 s," in first
    assert "OK: " in first  # verify
