"""What the benchmarks share: a background CPU load they start themselves, interleaved timing, and the
fitted growth exponent.

A ComfyUI process is rarely alone on its CPU (decoding, previews, other nodes): each benchmark
measures twice in one run, quiet and under `background_load` (busy processes, one per core by
default, stopped afterwards), so that work which waits on spinning thread pools shows up.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextmanager
def background_load(processes: int | None = None) -> Iterator[int]:
    """Busy Python processes (pure arithmetic loops) for the duration of the block; yields their count."""
    n = processes if processes is not None else cores()
    # each loops until its parent is gone, so a benchmark killed midway leaves no busy process behind
    loop = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    busy = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let them reach the scheduler
        yield n
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait()


class Timing(float):
    """Median seconds of a measurement (the float value), with the fastest run kept as `.min` and every
    run, in order, as `.runs`."""

    min: float
    runs: list[float]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Median seconds per call of each fn (min in `.min`); the fns take turns (order alternating) to share drift."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for k in keys if r % 2 == 0 else keys[::-1]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    out = {}
    for k, v in times.items():
        out[k] = Timing(statistics.median(v))
        out[k].min = min(v)
        out[k].runs = v
    return out


def paired_ratio(a: Timing, b: Timing) -> float:
    """The median of a's runs over b's run of the same round: the two ran back to back, so a load that
    comes and goes (other processes on a shared machine) mostly cancels out."""
    return statistics.median(x / y for x, y in zip(a.runs, b.runs))


def growth_exponent(sizes: list[float], seconds: list[float]) -> float:
    """The slope of log(time) against log(size), least squares: 1.0 is linear growth."""
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
