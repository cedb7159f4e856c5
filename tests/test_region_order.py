"""Choosing and ordering regions before Mask Margin Crop (maskmargin/region_order.py)."""

from __future__ import annotations

import pytest
import torch

from maskmargin.crop import mask_margin_crop
from maskmargin.detection import Detection, ImageDetections
from maskmargin.errors import InvalidParameter
from maskmargin.region_order import RegionSelection, parse_indices, select_regions
from maskmargin.settings import CropSettings
from maskmargin.stitch import inpaint_stitch

H, W = 120, 200
# three faces: a small one on the right (most confident), a large one on the left, a middle one low down
BOXES = [((150, 10, 170, 30), 0.9, "face"), ((10, 10, 70, 70), 0.5, "face"), ((90, 80, 120, 110), 0.7, "hand")]


def scene(batch: int = 1) -> tuple[torch.Tensor, list[ImageDetections]]:
    masks = torch.zeros(batch, H, W)
    dets = tuple(Detection(tuple(float(v) for v in box), score, label) for box, score, label in BOXES)
    for x0, y0, x1, y1 in (b for b, _, _ in BOXES):
        masks[:, y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = 0.5  # a fade band
        masks[:, y0:y1, x0:x1] = 1.0
    return masks, [ImageDetections(W, H, dets)] * batch


def boxes(found: ImageDetections) -> list[tuple[float, ...]]:
    return [d.box for d in found.detections]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("detection order", [0, 1, 2]),
        ("left to right", [1, 2, 0]),
        ("right to left", [0, 2, 1]),
        ("top to bottom", [0, 1, 2]),
        ("bottom to top", [2, 1, 0]),
        ("largest first", [1, 2, 0]),
        ("smallest first", [0, 2, 1]),
        ("most confident first", [0, 2, 1]),
    ],
)
def test_orders(order, expected):
    masks, dets = scene()
    out, chosen = select_regions(masks, dets, RegionSelection(order=order))
    assert boxes(chosen[0]) == [dets[0].detections[k].box for k in expected]
    assert torch.equal(out, masks), "keeping every region keeps the mask as it was"


def test_keep_by_index_label_and_size_drops_the_pixels_of_the_others():
    masks, dets = scene()
    original = masks.clone()
    out, chosen = select_regions(masks, dets, RegionSelection(order="left to right", keep_index="-1"))
    assert boxes(chosen[0]) == [dets[0].detections[0].box], "the rightmost"
    assert torch.equal(masks, original), "input not modified"
    assert out[0, 5:35, 145:175].equal(masks[0, 5:35, 145:175])
    assert out[0, :, :140].abs().sum() == 0, "the others' pixels (fade band too) are gone"
    _, chosen = select_regions(masks, dets, RegionSelection(keep_labels="hand"))
    assert [d.label for d in chosen[0].detections] == ["hand"]
    _, chosen = select_regions(masks, dets, RegionSelection(min_size=25))
    assert len(chosen[0].detections) == 2
    _, chosen = select_regions(masks, dets, RegionSelection(min_size=0.2, size_unit="fraction of image"))
    assert boxes(chosen[0]) == [dets[0].detections[1].box], "only the 60 px face is >= 40 px (0.2 of 200)"
    _, chosen = select_regions(masks, dets, RegionSelection(max_size=25))
    assert boxes(chosen[0]) == [dets[0].detections[0].box]


def test_crops_follow_the_chosen_order_and_an_image_with_nothing_left_passes_through():
    masks, dets = scene(2)
    images = torch.rand(2, H, W, 3)
    out, chosen = select_regions(
        masks, dets, RegionSelection(order="largest first", keep_index="0", keep_labels="face")
    )
    result = mask_margin_crop(images, out, CropSettings(64, 64, 4, 0), chosen)
    assert [c.image for c in result.plan] == [0, 1]
    assert all(c.region.box == (8, 8, 72, 72) for c in result.plan), "the largest face of each image"
    empty, nothing = select_regions(masks, dets, RegionSelection(keep_labels="cat"))
    assert empty.abs().sum() == 0 and all(not d.detections for d in nothing)
    result = mask_margin_crop(images, empty, CropSettings(64, 64, 4, 0), nothing)
    assert result.placeholder
    assert torch.equal(inpaint_stitch(result, torch.zeros(1, 64, 64, 3)), images)


def test_without_detections_each_part_of_the_mask_is_a_region():
    masks, _ = scene()
    _, chosen = select_regions(masks, None, RegionSelection(order="right to left", keep_index="0:2"))
    assert [d.label for d in chosen[0].detections] == ["mask", "mask"]
    assert chosen[0].detections[0].box[0] == 148, "the rightmost part first (its fade band included)"


def test_index_lists():
    assert parse_indices("", 3) == [0, 1, 2]
    assert parse_indices("0,2", 3) == [0, 2]
    assert parse_indices("-1", 3) == [2]
    assert parse_indices("2, 0 ,5", 3) == [2, 0]
    assert parse_indices("1:", 4) == [1, 2, 3]
    assert parse_indices("0,0", 2) == [0]
    for bad in ("a", "1-2", "1:2:3:4"):
        with pytest.raises(InvalidParameter) as err:
            parse_indices(bad, 3)
        assert err.value.parameter == "keep_index"
    with pytest.raises(InvalidParameter):
        RegionSelection(order="random")
    with pytest.raises(InvalidParameter):
        RegionSelection(min_size=-1)


def test_selected_masks_carry_the_kept_regions_boxes_as_their_support(monkeypatch):
    """Select Regions' masks remember where they can be above 0 (the kept regions' boxes), so Mask Margin
    Crop reads only there; from built masks Select Regions itself reads only their support too."""
    from maskmargin import regions
    from maskmargin.masks import build_masks, known_support

    masks, dets = scene(2)
    out, chosen = select_regions(masks, dets, RegionSelection(keep_labels="face"))
    assert known_support(out) == (((148, 8, 172, 32), (8, 8, 72, 72)),) * 2  # in detection order
    assert torch.equal(out[:, 78:112, 88:122], torch.zeros(2, 34, 34)), "the hand is gone"
    assert torch.equal(out[:, :, :80], masks[:, :, :80]) and torch.equal(out[:, :, 140:], masks[:, :, 140:])

    reads = []
    real = regions.find_parts
    monkeypatch.setattr(regions, "find_parts", lambda on, near=None: reads.append(near) or real(on, near))
    built = build_masks(dets, 2, 2)
    again, _ = select_regions(built, dets, RegionSelection(keep_labels="face"))
    assert len(reads) == 2 and all(r is not None for r in reads), "Select Regions read only the support"
    reads.clear()
    images = torch.rand(2, H, W, 3)
    c = mask_margin_crop(images, again, CropSettings(64, 64, 4), chosen)
    assert len(reads) == 2 and all(r is not None for r in reads) and len(c.plan) == 4


def test_both_paste_kernels_give_the_same_masks():
    """Select Regions pastes kept regions in numpy for float32 CPU masks and in torch otherwise (a GPU, or
    another dtype): the same masks either way."""
    masks, dets = scene(2)
    selection = RegionSelection(order="left to right", keep_index="0,2")
    numpy_out, _ = select_regions(masks, dets, selection)
    torch_out, _ = select_regions(masks.to(torch.float64), dets, selection)
    assert torch_out.dtype == torch.float32 and torch.equal(numpy_out, torch_out)
    assert numpy_out.sum() > 0 and not torch.equal(numpy_out, masks)
