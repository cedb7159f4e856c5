"""Region Prompts' line rules, skipped regions in Inpaint Stitch, and SEGS both ways (engine only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from maskmargin.crop import mask_margin_crop
from maskmargin.detection import Detection, ImageDetections
from maskmargin.errors import InvalidParameter
from maskmargin.region_prompts import assign_prompts, describe
from maskmargin.segs import SEG, crop_region, from_segs, to_segs
from maskmargin.settings import CropSettings
from maskmargin.stitch import inpaint_stitch


def texts(text, labels, default=""):
    return [p.text for p in assign_prompts(text, labels, default)]


def test_one_line_per_region_then_the_default():
    assert texts("a\nb", ["face"] * 3, "d") == ["a", "b", "d"]
    assert texts("a\n\nc\n\n", ["face"] * 3, "d") == ["a", "d", "c"], "an empty line: the default"
    assert texts("a\n-\n", ["face"] * 3) == ["a", None, ""], "- leaves a region untouched"
    assert texts("", ["face"], "-") == [None]
    assert texts("# a comment\nx", ["face", "face"]) == ["x", ""]


def test_label_rules():
    labels = ["face", "hand (left)", "face", "person"]
    assert texts("face: smiling\nhand: five fingers\nperson: -", labels, "d") == [
        "smiling",
        "five fingers",
        "smiling",
        None,
    ]
    assert texts("first\nface: smiling", labels, "d") == ["first", "d", "smiling", "d"], "a line beats a label rule"
    assert texts("a photo: of me", labels) == ["a photo: of me", "", "", ""], "not a label: a plain line"
    summary = describe(assign_prompts("x\nhand: y", labels, "-"))
    assert summary.splitlines()[:2] == ["0 (face, line 1): x", "1 (hand (left), label hand): y"]
    assert summary.splitlines()[2] == "2 (face, default): (untouched)"


def test_a_skipped_crop_is_not_stitched():
    images = torch.rand(1, 64, 96, 3)
    masks = torch.zeros(1, 64, 96)
    masks[0, 10:30, 10:30] = 1
    masks[0, 10:30, 60:80] = 1
    result = mask_margin_crop(images, masks, CropSettings(64, 64, 4, 0))
    assert len(result.plan) == 2
    out = inpaint_stitch(dataclasses.replace(result, skipped=frozenset({1})), torch.zeros(2, 64, 64, 3))
    assert out[0, 10:30, 10:30].abs().max() == 0, "crop 0 stitched"
    assert torch.equal(out[0, :, 40:], images[0, :, 40:]), "crop 1 left untouched"


def scene():
    image = torch.rand(1, 100, 160, 3)
    mask = torch.zeros(100, 160)
    mask[18:52, 18:52] = 0.5
    mask[20:50, 20:50] = 1.0
    mask[60:80, 120:150] = 1.0  # a part no detection covers
    found = ImageDetections(160, 100, (Detection((20.0, 20.0, 50.0, 50.0), 0.8, "face"),))
    return image, mask, found


def test_to_segs_has_impacts_fields_and_values():
    image, mask, found = scene()
    shape, items = to_segs(image, mask, found, crop_factor=2.0)
    assert shape == (100, 160) and len(items) == 2
    face, orphan = items
    assert SEG._fields == (
        "cropped_image",
        "cropped_mask",
        "confidence",
        "crop_region",
        "bbox",
        "label",
        "control_net_wrapper",
    )
    assert face.bbox == [20, 20, 50, 50] and face.crop_region == [5, 5, 65, 65]
    assert face.label == "face" and face.confidence == pytest.approx(0.8) and face.control_net_wrapper is None
    assert isinstance(face.cropped_mask, np.ndarray) and face.cropped_mask.dtype == np.float32
    assert face.cropped_mask.shape == (60, 60) and face.cropped_mask.max() == 1.0
    assert face.cropped_mask[13, 13] == 0.5, "the fade band comes along"
    assert tuple(face.cropped_image.shape) == (1, 60, 60, 3)
    assert torch.equal(face.cropped_image[0], image[0, 5:65, 5:65])
    assert orphan.label == "mask"
    assert crop_region((150, 90, 160, 100), 3.0, 160, 100) == [130, 70, 160, 100], "moved inside, not cut"


def test_segs_round_trip():
    image, mask, found = scene()
    back, dets = from_segs(to_segs(image, mask, found, crop_factor=1.5))
    assert torch.equal(back[0], mask), "the mask comes back exactly"
    assert [d.label for d in dets.detections] == ["face", "mask"]
    assert dets.detections[0].box == (20.0, 20.0, 50.0, 50.0)
    assert (dets.width, dets.height) == (160, 100)
    result = mask_margin_crop(image, back, CropSettings(64, 64, 4, 0), [dets])
    assert [c.region.label for c in result.plan] == ["face", "mask"]


def test_from_segs_accepts_impact_style_values_and_rejects_others():
    seg = SEG(None, torch.ones(1, 10, 10), np.float32(0.7), [5, 5, 15, 15], [6, 6, 14, 14], "A")
    mask, dets = from_segs(((40, 40), [seg]))
    assert mask.shape == (1, 40, 40) and mask[0, 5:15, 5:15].min() == 1 and mask.sum() == 100
    assert dets.detections[0].score == pytest.approx(0.7)
    with pytest.raises(InvalidParameter):
        from_segs("nope")
