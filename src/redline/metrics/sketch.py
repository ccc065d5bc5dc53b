"""A log-bucketed latency histogram: bounded memory, mergeable, *subtractable*.

Quantiles over a sliding window need a summary that can both absorb a second's worth of samples
and give them back when that second leaves the window. A DDSketch-style histogram does both: a
value ``v`` lands in bucket ``ceil(log(v) / log(gamma))``, so every value in a bucket is within
``accuracy`` (relative) of the bucket's representative value. Buckets are plain ``dict[int, int]``
counts, so adding and removing a second is a dict merge, and the number of buckets is bounded by
the dynamic range (about 1,400 for 1 µs .. 1 day at 1 %), never by the number of samples.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["ACCURACY", "bucket_of", "quantile", "quantiles", "value_of"]

#: Relative accuracy of every reported quantile.
ACCURACY: Final = 0.01
_GAMMA: Final = (1 + ACCURACY) / (1 - ACCURACY)
_INV_LOG_GAMMA: Final = 1.0 / math.log(_GAMMA)
_ZERO_BUCKET: Final = -(2**31)
_MIN_VALUE: Final = 1e-6
_log = math.log
_ceil = math.ceil
#: Bucket indices of 1e-6 .. 1e15 (every latency validation lets through), as shared int objects:
#: a fresh int per sample would be a separate 32-byte object in every per-second histogram.
_LOW: Final = _ceil(_log(_MIN_VALUE) * _INV_LOG_GAMMA)
_INTERNED: Final = tuple(range(_LOW, _ceil(_log(1e15) * _INV_LOG_GAMMA) + 1))


def bucket_of(value: float) -> int:
    """The bucket index of a non-negative value (values below 1e-6 share one bucket)."""
    if value < _MIN_VALUE:
        return _ZERO_BUCKET
    b = _ceil(_log(value) * _INV_LOG_GAMMA)
    i = b - _LOW
    return _INTERNED[i] if i < len(_INTERNED) else b


def value_of(bucket: int) -> float:
    """The representative value of a bucket: within ``ACCURACY`` of every value in it."""
    if bucket == _ZERO_BUCKET:
        return 0.0
    return 2.0 * _GAMMA**bucket / (_GAMMA + 1.0)


def quantile(hist: dict[int, int], total: int, q: float) -> float:
    """The ``q``-quantile (0..1) of a histogram holding ``total`` samples; 0.0 when empty."""
    if total <= 0:
        return 0.0
    rank = q * (total - 1)
    seen = 0
    for bucket in sorted(hist):
        count = hist[bucket]
        if count <= 0:
            continue
        seen += count
        if seen > rank:
            return value_of(bucket)
    return value_of(max(hist))


def quantiles(hists: list[dict[int, int]], total: int, qs: tuple[float, ...]) -> list[float]:
    """Several quantiles of the sum of ``hists`` (holding ``total`` samples) in one sorted walk.

    Used by snapshots: the window's closed histogram and the open bucket's are read in place,
    never merged into a copy, and their keys are sorted once for all the quantiles asked.
    """
    if total <= 0:
        return [0.0 for _ in qs]
    if len(hists) > 2:
        # A fleet: one merged copy beats looking every key up in every histogram.
        merged: dict[int, int] = {}
        for hist in hists:
            for bucket, count in hist.items():
                merged[bucket] = merged.get(bucket, 0) + count
        hists = [merged]
    first = hists[0]
    rest = hists[1:]
    keys = sorted(first.keys() | rest[0].keys() if rest else first)
    if not keys:
        return [0.0 for _ in qs]
    out = []
    last = len(keys) - 1
    i = 0
    seen = 0
    for q in qs:  # ascending
        rank = q * (total - 1)
        while i < last:
            k = keys[i]
            n = first.get(k, 0)
            for extra in rest:
                n += extra.get(k, 0)
            if seen + n > rank:
                break
            seen += n
            i += 1
        out.append(value_of(keys[i]))
    return out
