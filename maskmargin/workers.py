"""Per-item work on a few threads, results in order: Image Mask's images, Mask Margin Crop's crops,
Inpaint Stitch's crops going back.

The heavy parts (MediaPipe graphs, OpenCV resizes, tensor arithmetic) let go of the GIL, so a few
threads use the cores a single loop leaves idle. `in_order` hands each item to a pool and its result
back, in order; `each` has the calling thread work through the items beside the workers and wait
only at the end, so on a busy CPU no item waits for a descheduled thread to be woken.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
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


def each(fn: Callable[[T], R], items: Sequence[T], progress: Callable[[int, int], None] | None = None) -> list[R]:
    """`fn(item)` for every item, on the calling thread and up to worker_count() - 1 workers that take
    the next item as they come free; the results in the items' order.

    `progress(done, total)` is called on the calling thread after each item it finished (counting every
    item finished by then) and once at the end; when it or `fn` raises, no further item starts, the items
    under way finish and the exception propagates. Workers run under the caller's grad and inference modes.
    """
    n = len(items)
    results: list[R | None] = [None] * n
    workers = min(n, worker_count())
    if workers <= 1:
        for k, item in enumerate(items):
            results[k] = fn(item)
            if progress is not None:
                progress(k + 1, n)
        return results  # type: ignore[return-value]
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "stop": False}
    errors: list[BaseException] = []

    def take() -> int | None:
        with lock:
            if state["stop"] or state["next"] >= n:
                return None
            state["next"] += 1
            return state["next"] - 1

    def run(k: int) -> int:
        results[k] = fn(items[k])
        with lock:
            state["done"] += 1
            return state["done"]

    def work() -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            try:
                while (k := take()) is not None:
                    run(k)
            except BaseException as exc:  # handed to the calling thread
                errors.append(exc)
                state["stop"] = True

    threads = [threading.Thread(target=work, name="maskmargin", daemon=True) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    try:
        while (j := take()) is not None:
            done = run(j)
            if progress is not None:
                progress(done, n)
    except BaseException:
        state["stop"] = True
        raise
    finally:
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    if progress is not None:
        progress(n, n)
    return results  # type: ignore[return-value]
