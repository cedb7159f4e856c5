"""How many threads per-image work may use."""

from __future__ import annotations

import os

MAX_WORKERS = 4  # beyond this the GIL-bound parts (protobuf results, tensor calls) stop it scaling


def worker_count() -> int:
    """Threads for per-image work: the cores this process may use, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))
