"""Timing helpers shared by the benchmarks: medians and p90 of many perf_counter_ns samples."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Timing:
    name: str
    median_us: float
    p90_us: float

    def row(self, floor: Timing | None = None) -> str:
        ratio = f"{self.median_us / floor.median_us:6.2f}x" if floor else "       "
        return f"{self.name:<52} {self.median_us:10.2f} {self.p90_us:10.2f}  {ratio}"


def measure(name: str, fn: Callable[[], Any], *, number: int = 2000, batch: int = 10) -> Timing:
    """Time ``fn`` in batches after a warm-up; report per-call median and p90 in microseconds."""
    for _ in range(min(number, 500)):
        fn()
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, number // batch)):
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            samples.append((time.perf_counter_ns() - t0) / batch / 1000)
    finally:
        if gc_was:
            gc.enable()
    samples.sort()
    return Timing(name, statistics.median(samples), samples[int(len(samples) * 0.9)])


def header(title: str) -> None:
    print(f"\n## {title}\n")
    print(f"{'measurement':<52} {'median us':>10} {'p90 us':>10}  ratio")
    print("-" * 84)


def paired(
    name_a: str,
    fa: Callable[[], Any],
    name_b: str,
    fb: Callable[[], Any],
    *,
    number: int = 4000,
    batch: int = 20,
) -> tuple[Timing, Timing, float]:
    """Time ``fa`` and ``fb`` in alternating batches (so machine noise hits both alike).

    Returns both timings and the median of the per-batch ratios b / a.
    """
    for _ in range(min(number, 500)):
        fa()
        fb()
    sa: list[float] = []
    sb: list[float] = []
    ratios: list[float] = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, number // batch)):
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                fa()
            t1 = time.perf_counter_ns()
            for _ in range(batch):
                fb()
            t2 = time.perf_counter_ns()
            a, b = (t1 - t0) / batch / 1000, (t2 - t1) / batch / 1000
            sa.append(a)
            sb.append(b)
            ratios.append(b / a)
    finally:
        if gc_was:
            gc.enable()
    sa.sort()
    sb.sort()
    ta = Timing(name_a, statistics.median(sa), sa[int(len(sa) * 0.9)])
    tb = Timing(name_b, statistics.median(sb), sb[int(len(sb) * 0.9)])
    return ta, tb, statistics.median(ratios)


def paired_row(floor: Timing, ours: Timing, ratio: float, target: str = "") -> str:
    """Two table lines: the floor, then ours with the paired median ratio."""
    first = floor.row()
    second = f"{ours.name:<52} {ours.median_us:10.2f} {ours.p90_us:10.2f}  {ratio:6.2f}x"
    return first + "\n" + second + (f"   (target {target})" if target else "")
