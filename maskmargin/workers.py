"""Per-item work on a few threads, results in order: Image Mask's images, Mask Margin Crop's crops,
Inpaint Stitch's crops going back.

The heavy parts (MediaPipe graphs, OpenCV resizes, tensor arithmetic) let go of the GIL, so a few
threads use the cores a single loop leaves idle.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

import torch

MAX_WORKERS = 4  # beyond this the GIL-bound parts (protobuf results, tensor calls) stop it scaling

T = TypeVar("T")
R = TypeVar("R")


def worker_count() -> int:
    """Threads for per-item work: the cores this process may use, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@contextmanager
def in_order(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[Iterator[R]]:
    """`fn(item)` for every item on worker threads, yielded in the items' order.

    At most twice as many items as workers are under way or waiting, so large results do not pile
    up. The workers run under the caller's grad and inference modes (thread-local in torch; ComfyUI
    runs nodes in inference mode). `workers`: how many threads (default: `worker_count()`).
    Leaving the block early, by an exception of `fn` or of the caller's
    loop (an interrupted run), cancels the items not yet started; those under way finish.
    """
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def call(item: T) -> R:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(item)

    workers = workers or worker_count()
    if isinstance(items, Sized):  # an iterable of unknown length (frames of a video) is read as it goes
        workers = min(len(items), workers)
    if workers <= 1:
        yield (call(item) for item in items)
        return
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maskmargin") as pool:

        def results() -> Iterator[R]:
            rest = iter(items)
            pending.extend(pool.submit(call, item) for item in islice(rest, 2 * workers))
            while pending:
                done = pending.popleft().result()
                pending.extend(pool.submit(call, item) for item in islice(rest, 1))  # one out, the next in
                yield done

        try:
            yield results()
        finally:
            for job in pending:
                job.cancel()
