"""tight_bounds: the same rectangle for numpy arrays and torch tensors."""

import numpy as np
import torch

from maskmargin.bounds import tight_bounds


def test_bounds_of_a_shape_numpy_and_torch_agree():
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:9, 10:12] = True
    mask[20, 50] = True
    assert tight_bounds(mask) == (10, 5, 51, 21)
    assert tight_bounds(torch.from_numpy(mask).float() * 0.5) == (10, 5, 51, 21)


def test_empty_masks_have_no_bounds():
    assert tight_bounds(np.zeros((4, 4), bool)) is None
    assert tight_bounds(torch.zeros(4, 4)) is None
