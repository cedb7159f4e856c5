"""IMAGE tensor to uint8 conversion: rounding, clamping, channel handling, input untouched."""

import numpy as np
import torch

from maskmargin.images import to_uint8_rgb


def test_values_round_and_clamp_including_negative_and_above_one():
    row = torch.tensor([-0.5, -0.001, 0.0, 0.5 / 255, 1.4 / 255, 0.5, 1.0, 1.2, 7.0])
    image = row.view(1, 1, -1, 1).expand(1, 2, -1, 3).contiguous()
    before = image.clone()
    (out,) = to_uint8_rgb(image)
    assert torch.equal(image, before)
    assert out.dtype == np.uint8 and out.shape == (2, 9, 3) and out.flags["C_CONTIGUOUS"]
    assert out[0, :, 0].tolist() == [0, 0, 0, 0, 1, 128, 255, 255, 255]


def test_grayscale_and_rgba_become_rgb():
    gray = torch.full((2, 4, 5, 1), 0.2)
    rgba = torch.cat([torch.full((1, 4, 5, 3), 0.6), torch.zeros(1, 4, 5, 1)], dim=-1)
    g = to_uint8_rgb(gray)
    (c,) = to_uint8_rgb(rgba)
    assert len(g) == 2 and g[0].shape == (4, 5, 3) and np.all(g[1] == 51)
    assert c.shape == (4, 5, 3) and np.all(c == 153)
