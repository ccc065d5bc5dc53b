"""Redaction cost against text length: an unbroken hex token of 2 KB, 20 KB and 200 KB.

Linear means each tenfold longer text costs about ten times as much; the ratio is printed for
each step, measured in the same run (best of 5).

    .venv/bin/python bench/redaction.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from redline.redaction import Redactor


def best_of(redactor: Redactor, text: str, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        redactor.scrub_text(text)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    rows = []
    for label, redactor in (("all patterns", Redactor()), ("no credentials", Redactor(credentials=False))):
        previous = None
        for n in (2_000, 20_000, 200_000):
            seconds = best_of(redactor, "a1b2c3d4e5" * (n // 10))
            ratio = "" if previous is None else f"{seconds / previous:.1f}x"
            rows.append(f"| {label} | {n:,} | {seconds * 1e3:.3f} | {ratio} |")
            previous = seconds
    print("| redactor | chars | ms (best of 5) | vs 10x shorter |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
