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


def _whole_frame_parts(on: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """The reference: every 8-connected part of the whole frame, labelled in one piece by OpenCV, in the
    order a raster scan meets them (OpenCV's own numbering follows its 2x2 blocks)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(on.astype(np.uint8), connectivity=8)
    out: list = []
    for k in range(1, count):
        x, y, w, h = (int(v) for v in stats[k, :4])
        first = int(np.argmax(labels[y, x : x + w] == k))
        out.append(((y, x + first), (x, y, x + w, y + h), labels[y : y + h, x : x + w] == k))
    return [(box, pixels) for _, box, pixels in sorted(out, key=lambda part: part[0])]


def random_blobs(rng: np.random.Generator, low: int, high: int, most: int, size: int) -> np.ndarray:
    """A float mask of a random size from low to high each way holding 1 to most - 1 random rectangles of up
    to size - 1 pixels each way at random levels (overlapping, cut by the borders)."""
    h, w = int(rng.integers(low, high)), int(rng.integers(low, high))
    on = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, most))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        on[y : y + int(rng.integers(1, size)), x : x + int(rng.integers(1, size))] = rng.uniform(0.01, 1)
    return on


def test_labelling_window_by_window_equals_labelling_the_whole_frame():
    """Parts found per occupied window: the same boxes, pixels and raster order as one whole-frame pass,
    on scattered blobs, blobs whose rows and columns overlap (no cut separates them), diagonal touches
    (8-connected across a corner), single pixels and parts on every border."""
    from maskmargin.regions import find_parts, occupied_windows

    rng = np.random.default_rng(7)
    for trial in range(40):
        on = random_blobs(rng, 20, 200, 12, 30)
        h, w = on.shape
        on[rng.random((h, w)) > 0.995] = 0.5  # specks
        if trial % 5 == 0:  # an L whose bounding box holds another blob: only labelling can split them
            on = np.zeros((80, 90), np.float32)
            on[2:40, 2:5] = on[37:40, 2:60] = 1
            on[10:20, 20:30] = 1
            on[40, 60] = 1  # touches the L's corner diagonally: the same part
            on[79, 89] = on[0, 89] = 1  # corners of the frame
        parts = find_parts(on)
        if trial % 5 == 0:
            assert len(parts.boxes) == 4, "the L with its diagonal neighbour, the blob inside its box, two corners"
        reference = _whole_frame_parts(on > 0)
        assert parts.boxes == [box for box, _ in reference]
        for k, (_, pixels) in enumerate(reference):
            assert np.array_equal(parts.owned(k), pixels)
        for _ in range(10):  # the parts a box touches: from their boxes, or pixel by pixel where it cuts them
            bx, by = int(rng.integers(0, on.shape[1])), int(rng.integers(0, on.shape[0]))
            box = (bx, by, bx + int(rng.integers(1, 60)), by + int(rng.integers(1, 60)))
            expected = []
            for k, ((x0, y0, x1, y1), pixels) in enumerate(reference):
                frame = np.zeros(on.shape, bool)
                frame[y0:y1, x0:x1] = pixels
                if frame[box[1] : box[3], box[0] : box[2]].any():
                    expected.append(k)
            assert parts.touching(box) == expected
        windows = occupied_windows(on)
        covered = np.zeros(on.shape, int)
        for x0, y0, x1, y1 in windows:
            covered[y0:y1, x0:x1] += 1
        assert covered.max() <= 1 and np.all(covered[on > 0] == 1), "disjoint windows holding every pixel"


def test_scattered_faces_are_labelled_in_windows_of_their_own():
    from maskmargin.regions import occupied_windows

    mask = np.zeros((2160, 3840), np.float32)
    boxes = [(100, 100, 400, 400), (3000, 200, 3500, 700), (1500, 1500, 1900, 2000), (200, 1700, 500, 2100)]
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 1
    assert sorted(occupied_windows(mask)) == sorted(boxes)
    assert occupied_windows(np.zeros((50, 50), np.float32)) == []


def test_detections_parts_found_around_their_boxes_equal_the_whole_frame_pass():
    """orphans=False reads only around the detections' boxes: the same regions (boxes, owned pixels, labels,
    detections, order) as the whole-frame pass without its orphans, on blobs reaching beyond their boxes, thin
    lines crossing the frame (parts that leave every box by a one-pixel path), parts shared by two boxes,
    boxes on and off the frame's edge, boxes on nothing, and a mask covering the whole frame."""
    from maskmargin.regions import closed_window

    rng = np.random.default_rng(11)
    for trial in range(60):
        on = random_blobs(rng, 30, 220, 10, 40)
        h, w = on.shape
        if trial % 6 == 0:  # thin snakes: parts that leave every box by a one-pixel path
            on[rng.integers(0, h), :] = 0.3
            on[:, rng.integers(0, w)] = 0.3
        if trial == 6:
            on[:] = 1
        dets = []
        for _ in range(int(rng.integers(0, 5))):
            x0, y0 = rng.uniform(-20, w), rng.uniform(-20, h)
            dets.append(Detection((x0, y0, x0 + rng.uniform(1, 60), y0 + rng.uniform(1, 60)), 0.9, "face"))
        found = ImageDetections(w, h, tuple(dets))
        mask = torch.from_numpy(on)
        near = find_regions(mask, found, orphans=False)
        whole = [r for r in find_regions(mask, found) if r.detection is not None]
        assert [(r.box, r.label, r.detection) for r in near] == [(r.box, r.label, r.detection) for r in whole]
        assert all(np.array_equal(a.owned, b.owned) for a, b in zip(near, whole))
        for det in dets:
            box = det.pixel_box(w, h)
            if box[2] > box[0] and box[3] > box[1]:
                x0, y0, x1, y1 = closed_window(on, box)
                ring = np.pad(np.ones((y1 - y0, x1 - x0), bool), 1) & ~np.pad(np.ones((y1 - y0, x1 - x0), bool), 1)
                padded = np.pad(on, 1)[y0 : y1 + 2, x0 : x1 + 2]
                assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
                assert not (padded[ring] > 0).any(), "nothing masked on the ring just outside the window"
