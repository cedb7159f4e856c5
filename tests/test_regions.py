"""Regions: connected parts of the mask, or one per detection; every masked pixel has at most one owner."""

import numpy as np
import torch

from maskmargin.detection import Detection, ImageDetections
from maskmargin.regions import find_regions


def two_blobs() -> torch.Tensor:
    mask = torch.zeros(100, 120)
    mask[60:80, 10:30] = 1.0  # lower left
    mask[5:25, 70:100] = 0.5  # upper right, faded: still masked
    return mask


def test_parts_of_the_mask_alone_are_regions_top_to_bottom():
    regions = find_regions(two_blobs())
    assert [r.box for r in regions] == [(70, 5, 100, 25), (10, 60, 30, 80)]
    assert all(r.owned.all() for r in regions)


def test_small_parts_are_dropped_by_min_size():
    mask = two_blobs()
    mask[90:93, 110:113] = 1.0
    assert len(find_regions(mask)) == 3
    assert len(find_regions(mask, min_size=8)) == 2


def test_a_part_touched_by_two_detections_is_split_between_them():
    mask = torch.zeros(50, 100)
    mask[10:30, 10:90] = 1.0  # two faces whose masks ran together
    found = ImageDetections(
        100, 50, (Detection((10, 10, 45, 30), 0.9, "face"), Detection((55, 10, 90, 30), 0.8, "face"))
    )
    left, right = find_regions(mask, found)
    assert left.box[0] == 10 and right.box[2] == 90 and left.box[2] <= right.box[0]
    owned = np.zeros((50, 100), int)
    for r in (left, right):
        x0, y0, x1, y1 = r.box
        owned[y0:y1, x0:x1] += r.owned
    assert owned.max() == 1 and owned.sum() == int(mask.sum())  # each masked pixel exactly once
    assert left.label == right.label == "face"


def test_a_part_no_detection_touches_is_kept_as_its_own_region():
    mask = two_blobs()
    found = ImageDetections(120, 100, (Detection((10, 60, 30, 80), 0.9, "face"),))
    regions = find_regions(mask, found)
    assert [r.box for r in regions] == [(10, 60, 30, 80), (70, 5, 100, 25)]  # detections first, then orphans
    assert regions[0].label == "face" and regions[1].label == "mask"  # an orphan part is labelled "mask"


def test_an_empty_mask_has_no_regions():
    assert find_regions(torch.zeros(10, 10)) == []
