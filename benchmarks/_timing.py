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
