"""New large tensors, allocated so that filling them is cheap.

On the CPU, numpy's allocator asks the kernel for transparent huge pages (madvise) on large
blocks; torch's does not. With the kernel's THP in "madvise" mode (the usual default), writing a
fresh 100 MB buffer then takes a quarter of the time: page faults, not arithmetic, dominate
copying a 4K frame or filling a batch of masks.
"""

from __future__ import annotations

import numpy as np
import torch

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


def copy_of(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of `x` (any strides) that shares no memory with it."""
    out = empty(tuple(x.shape), x.device, x.dtype)
    if x.device.type == "cpu" and x.dtype in _NUMPY:
        np.copyto(out.numpy(), x.numpy())  # numpy's copy loop is faster than torch's on the CPU
        return out
    return out.copy_(x)
