"""Timing helpers shared by the benchmarks: medians and p90 of many perf_counter_ns samples."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
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


def _timing(name: str, samples: list[float]) -> Timing:
    samples = sorted(samples)
    return Timing(name, statistics.median(samples), samples[int(len(samples) * 0.9)])


def paired(
    floor_name: str,
    floor: Callable[[], Any],
    name: str,
    fn: Callable[[], Any],
    *,
    number: int = 4000,
    batch: int = 20,
) -> tuple[Timing, Timing, float]:
    """Time ``floor`` and ``fn`` in alternating batches, so both see the same machine noise
    (a shared 2-core box drifts by tens of percent between back-to-back runs of one function).

    Returns both timings and the median of the per-batch ratios fn / floor.
    """
    for _ in range(min(number // 4, 300)):
        floor()
        fn()
    a: list[float] = []
    b: list[float] = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, number // batch)):
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                floor()
            t1 = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            t2 = time.perf_counter_ns()
            a.append((t1 - t0) / batch / 1000)
            b.append((t2 - t1) / batch / 1000)
    finally:
        if gc_was:
            gc.enable()
    ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
    return _timing(floor_name, a), _timing(name, b), ratio


async def apaired(
    floor_name: str,
    floor: Callable[[], Awaitable[Any]],
    name: str,
    fn: Callable[[], Awaitable[Any]],
    *,
    number: int = 4000,
    batch: int = 10,
) -> tuple[Timing, Timing, float]:
    """:func:`paired` for coroutine functions, timed inside the running loop."""
    for _ in range(min(number // 4, 300)):
        await floor()
        await fn()
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, number // batch)):
        t0 = time.perf_counter_ns()
        for _ in range(batch):
            await floor()
        t1 = time.perf_counter_ns()
        for _ in range(batch):
            await fn()
        t2 = time.perf_counter_ns()
        a.append((t1 - t0) / batch / 1000)
        b.append((t2 - t1) / batch / 1000)
    ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
    return _timing(floor_name, a), _timing(name, b), ratio


def show(floor: Timing, timing: Timing, ratio: float, note: str = "") -> None:
    """Print the floor, then the measurement with its paired ratio (and an optional note)."""
    print(floor.row())
    print(timing.row()[:-9] + f"  {ratio:6.2f}x" + (f"   {note}" if note else ""))
