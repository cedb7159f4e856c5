"""Padding and blur semantics, asserted pixel by pixel."""

import math

import numpy as np
import pytest
import torch

from maskmargin.detection import Detection, ImageDetections
from maskmargin.masks import build_mask, build_masks, distance_within, pad_and_fade

W, H = 64, 48
BOX = (20.0, 15.0, 30.0, 25.0)  # covers columns 20..29, rows 15..24


def box_mask(padding: int, blur: int, boxes=(BOX,)) -> np.ndarray:
    found = ImageDetections(W, H, tuple(Detection(b, 0.9, "face") for b in boxes))
    return build_mask(found, padding, blur).numpy()


def dist_to_box(y: int, x: int, box=BOX) -> float:
    x0, y0, x1, y1 = (int(v) for v in box)
    dx = max(x0 - x, 0, x - (x1 - 1))
    dy = max(y0 - y, 0, y - (y1 - 1))
    return math.hypot(dx, dy)


def test_no_padding_no_blur_is_exactly_the_box():
    m = box_mask(0, 0)
    expected = np.zeros((H, W), np.float32)
    expected[15:25, 20:30] = 1
    assert np.array_equal(m, expected)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_positive_padding_is_exact_euclidean_growth(k):
    m = box_mask(k, 0)
    for y in range(H):
        for x in range(W):
            assert m[y, x] == (1.0 if dist_to_box(y, x) <= k else 0.0), (y, x)
    # spot checks: straight out k pixels is in, k+1 is out, corners are rounded
    assert m[15, 20 - k] == 1 and m[15, 20 - k - 1] == 0
    assert m[14 - k + 1, 29] == 1 and m[15 - k - 1, 29] == 0
    assert m[15 - k, 20 - k] == (1.0 if k * math.sqrt(2) <= k else 0.0)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_negative_padding_shrinks_each_detection(k):
    m = box_mask(-k, 0)
    expected = np.zeros((H, W), np.float32)
    expected[15 + k : 25 - k, 20 + k : 30 - k] = 1
    assert np.array_equal(m, expected)


def test_negative_padding_is_per_detection_so_touching_boxes_stay_apart():
    left, right = (10.0, 10.0, 20.0, 20.0), (20.0, 10.0, 30.0, 20.0)
    m = box_mask(-2, 0, boxes=(left, right))
    assert m[15, 17] == 1 and m[15, 22] == 1
    assert m[15, 18:22].sum() == 0  # the seam between the two boxes is eroded from both sides


def test_image_border_does_not_erode():
    m = box_mask(-2, 0, boxes=((0.0, 0.0, 10.0, 10.0),))
    expected = np.zeros((H, W), np.float32)
    expected[0:8, 0:8] = 1
    assert np.array_equal(m, expected)


@pytest.mark.parametrize("padding,blur", [(0, 4), (3, 5), (-2, 3)])
def test_blur_band_is_outside_the_padded_mask(padding, blur):
    m = box_mask(padding, blur)
    core = box_mask(padding, 0)
    assert np.all(m[core == 1] == 1.0), "inside the padded mask stays fully on"
    if padding >= 0:  # distance from the padded box, taken geometrically: d(box) - padding
        e = np.array([[dist_to_box(y, x) - padding for x in range(W)] for y in range(H)])
    else:  # the box shrunk on the pixel grid, then the band measured from it
        e = distance_within(torch.from_numpy(core > 0.5), blur + 2).numpy()
    band = (e > 0) & (e <= blur)
    assert band.sum() > 0
    assert np.all((m[band] > 0) & (m[band] < 1))
    assert np.allclose(m[band], 1 - e[band] / (blur + 1), atol=1e-6)
    assert np.all(m[e > blur] == 0), "nothing beyond the band"
    # monotone fall along a row leaving the mask to the left
    row = 20
    edge = int(np.flatnonzero(core[row])[0])
    profile = m[row, max(edge - blur - 2, 0) : edge + 1]
    assert np.all(np.diff(profile) >= 0) and profile[-1] == 1 and profile[0] == 0


def test_segmentation_shape_and_box_give_the_same_mask():
    """The closed-form box path and the distance search agree on a box-shaped segmentation."""
    shape = np.ones((10, 10), bool)
    seg = Detection(BOX, 0.9, "face", mask=shape, mask_box=(20, 15, 30, 25))
    for padding, blur in [(0, 0), (0, 3), (4, 4), (2, 7)]:
        as_box = box_mask(padding, blur)
        as_seg = build_mask(ImageDetections(W, H, (seg,)), padding, blur).numpy()
        assert np.allclose(as_box, as_seg, atol=1e-6), (padding, blur)


def test_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 40)) > 0.97
    d = distance_within(torch.from_numpy(mask), 6).numpy()
    ys, xs = np.nonzero(mask)
    for y in range(30):
        for x in range(40):
            true = np.min(np.hypot(ys - y, xs - x))
            if true <= 6:
                assert d[y, x] == pytest.approx(true, abs=1e-5)
            else:
                assert d[y, x] > 6


def test_segmentation_shape_is_used_not_its_box():
    shape = np.zeros((10, 10), bool)
    shape[2:8, 4:6] = True
    det = Detection((20.0, 15.0, 30.0, 25.0), 0.9, "person", mask=shape, mask_box=(20, 15, 30, 25))
    m = build_mask(ImageDetections(W, H, (det,)), 0, 0).numpy()
    assert m.sum() == shape.sum() and np.all(m[17:23, 24:26] == 1)


def test_detection_partly_outside_the_image_is_clipped():
    m = box_mask(0, 0, boxes=((-5.0, -5.0, 4.0, 3.0),))
    assert m[:3, :4].sum() == 12 and m.sum() == 12


def test_no_detections_gives_zero_mask_and_batch_shape():
    empty = ImageDetections(W, H, ())
    one = ImageDetections(W, H, (Detection(BOX, 0.5, "face"),))
    batch = build_masks([empty, one, empty], 4, 4)
    assert batch.shape == (3, H, W) and batch.dtype == torch.float32
    assert batch[0].sum() == 0 and batch[2].sum() == 0 and batch[1].max() == 1


def test_batch_of_different_sizes_is_refused():
    with pytest.raises(ValueError, match="share a size"):
        build_masks([ImageDetections(10, 10, ()), ImageDetections(12, 10, ())], 0, 0)


def test_pad_and_fade_on_a_whole_mask_and_input_untouched():
    mask = torch.zeros(H, W)
    mask[10:20, 10:20] = 1
    before = mask.clone()
    out = pad_and_fade(mask > 0.5, 2, 2)
    assert torch.equal(mask, before)
    assert out[10:20, 10:20].min() == 1 and out[8, 15] == 1
    assert out[7, 15] == pytest.approx(2 / 3) and out[6, 15] == pytest.approx(1 / 3) and out[5, 15] == 0


def test_large_box_filled_inside_and_banded_outside_matches_the_distance_search():
    """Boxes whose window passes LARGE_BOX are drawn as interior + four strips: same values as the search."""
    from maskmargin.masks import LARGE_BOX

    w, h = 900, 800
    box = (50.0, 40.0, 850.0, 760.0)
    assert (box[2] - box[0]) * (box[3] - box[1]) > LARGE_BOX
    seg = Detection(box, 0.9, "person", mask=np.ones((720, 800), bool), mask_box=(50, 40, 850, 760))
    for padding, blur in [(0, 6), (5, 3), (3, 0)]:
        as_box = build_mask(ImageDetections(w, h, (Detection(box, 0.9, "person"),)), padding, blur)
        as_seg = build_mask(ImageDetections(w, h, (seg,)), padding, blur)
        assert torch.allclose(as_box, as_seg, atol=1e-6), (padding, blur)
        assert as_box[400, 450] == 1 and as_box[40 - padding - blur - 1, 450] == 0


def test_cpu_and_torch_mask_kernels_agree():
    """build_mask's numpy kernels (CPU tensors) and torch kernels (other devices) give the same masks."""
    from maskmargin.masks import (
        _box_distance_np,
        _box_distance_torch,
        _distance_within_np,
        _distance_within_torch,
        _fade_np,
        _fade_torch,
    )

    rng = np.random.default_rng(3)
    shape = rng.random((90, 130)) > 0.97
    shape[40:60, 50:90] = True
    for limit in (0, 1, 5, 12):
        a = _distance_within_np(shape, limit)
        b = _distance_within_torch(torch.from_numpy(shape), limit).numpy()
        near = b <= limit
        assert np.array_equal(a <= limit, near) and np.allclose(a[near], b[near], atol=1e-6)
        for padding, blur in ((0, limit), (limit // 2, limit - limit // 2)):
            assert np.allclose(_fade_np(a, padding, blur), _fade_torch(torch.from_numpy(b), padding, blur).numpy())
    for rect, window in (((10, 20, 40, 50), (0, 0, 60, 70)), ((5, 5, 6, 6), (3, 2, 9, 11))):
        assert np.allclose(_box_distance_np(rect, window), _box_distance_torch(rect, window, "cpu").numpy())
