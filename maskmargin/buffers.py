"""New large tensors, allocated so that filling them is cheap.

On the CPU, numpy's allocator asks the kernel for transparent huge pages (madvise) on large
blocks; torch's does not. With the kernel's THP in "madvise" mode (the usual default), writing a
fresh 100 MB buffer then takes a quarter of the time: page faults, not arithmetic, dominate
copying a 4K frame or filling a batch of masks.
"""

from __future__ import annotations

import numpy as np
import torch

# A copy larger than this is split into slabs of SLAB bytes for the workers. One 4K frame (100 MB) is copied
# by one thread: right after other large buffers were freed (as in crop + stitch) parallel page faults
# contend for the process's memory map (22.5 ms against 10.7 for one thread, measured); a batch of 64
# 1024 px frames (805 MB) gains from two threads either way (94 against 173 ms).
PARALLEL_COPY = 256 << 20
SLAB = 32 << 20
_NUMPY = {torch.float32: np.float32, torch.uint8: np.uint8, torch.bool: np.bool_}


def empty(
    shape: tuple[int, ...], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """An uninitialised tensor of `shape` on `device`."""
    if torch.device(device).type == "cpu" and dtype in _NUMPY:
        return torch.from_numpy(np.empty(shape, dtype=_NUMPY[dtype]))
    return torch.empty(shape, device=device, dtype=dtype)


def zeros(
    shape: tuple[int, ...], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    if torch.device(device).type == "cpu" and dtype in _NUMPY:  # one plain pass, no thread pool to wait on
        return torch.from_numpy(np.zeros(shape, dtype=_NUMPY[dtype]))
    return torch.zeros(shape, device=device, dtype=dtype)


def clear(x: torch.Tensor) -> torch.Tensor:
    """`x` set to zero in place and returned: numpy's fill on the CPU (one thread, no thread pool to wait
    on; torch's zero_ starts its OpenMP pool above 32,768 elements)."""
    if x.device.type == "cpu" and x.dtype in _NUMPY:
        x.numpy().fill(0)
        return x
    return x.zero_()


def copy_of(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of `x` (any strides) that shares no memory with it.

    On the CPU numpy copies (its loop is faster than torch's), a very large tensor (a video batch) in slabs
    on a few worker threads: a fresh buffer's cost is its page faults, which the cores take in parallel."""
    out = empty(tuple(x.shape), x.device, x.dtype)
    if x.device.type != "cpu" or x.dtype not in _NUMPY:
        return out.copy_(x)
    src, dst = x.numpy(), out.numpy()
    if src.nbytes < PARALLEL_COPY or src.ndim < 2:
        np.copyto(dst, src)
        return out
    from .workers import each

    if src.ndim == 2:
        src, dst = src[None], dst[None]
    rows = max(1, SLAB // src[0, 0].nbytes)  # slabs of whole rows of one image
    slabs = [(b, slice(r, r + rows)) for b in range(src.shape[0]) for r in range(0, src.shape[1], rows)]

    def one(slab: tuple[int, slice]) -> None:
        np.copyto(dst[slab], src[slab])

    each(one, slabs)
    return out
