"""YOLO backend on real ultralytics models built offline (random weights, made deterministic)."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no DNS probes, no downloads

import numpy as np
import pytest
from yolo_models import save_scoring_model

from maskmargin import loader
from maskmargin.backends.yolo import YoloDetector
from maskmargin.errors import ModelNotAvailable
from maskmargin.loader import ModelDirs, load_detector
from maskmargin.registry import find_model

SIZES = [(640, 360), (300, 500)]  # (width, height): wide and tall, neither square


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo")
    return {
        "det": save_scoring_model("yolov8n.yaml", root / "det.pt"),
        "seg_full": save_scoring_model("yolov8n-seg.yaml", root / "seg_full.pt", constant_masks=True),
        "seg": save_scoring_model("yolov8n-seg.yaml", root / "seg.pt"),
    }


@pytest.fixture(scope="session")
def detectors(models):
    return {
        "det": YoloDetector(find_model("face_yolov8n"), models["det"], device="cpu"),
        "seg_full": YoloDetector(find_model("person_yolov8n-seg"), models["seg_full"], device="cpu"),
        "seg": YoloDetector(find_model("person_yolov8n-seg"), models["seg"], device="cpu"),
    }


def _image(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reference(path, images_rgb, **kwargs):
    """ultralytics' own prediction on the same images (it reads BGR)."""
    from ultralytics import YOLO

    model = YOLO(str(path))
    return model.predict(
        [im[..., ::-1].copy() for im in images_rgb],
        imgsz=640,
        conf=0.25,
        max_det=100,
        device="cpu",
        verbose=False,
        **kwargs,
    )


@pytest.mark.parametrize("size", SIZES)
def test_boxes_match_ultralytics_and_lie_inside_the_image(models, detectors, size):
    w, h = size
    image = _image(w, h)
    found = detectors["det"].detect_all(image, 0.25)
    ref = _reference(models["det"], [image])[0]
    assert len(found) == len(ref.boxes) > 5
    ours = np.array([d.box for d in found])
    np.testing.assert_allclose(ours, ref.boxes.xyxy.numpy(), atol=1e-3)
    assert (ours[:, 0] >= 0).all() and (ours[:, 1] >= 0).all()
    assert (ours[:, 2] <= w).all() and (ours[:, 3] <= h).all()
    assert [d.label for d in found] == [f"thing{int(c)}" for c in ref.boxes.cls]
    assert all(0.99 < d.score <= 1.0 for d in found)
    assert all(d.mask is None for d in found)


def _assert_fills_box(det, w, h):
    full = det.full_mask(w, h)
    x0, y0, x1, y1 = det.pixel_box(w, h)
    assert not full[:y0].any() and not full[y1:].any() and not full[:, :x0].any() and not full[:, x1:].any()
    inner = full[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]  # one pixel of tolerance at the box edge
    assert inner.all(), f"mask leaves {inner.size - inner.sum()} pixels of {det.box} empty"


@pytest.mark.parametrize("size", SIZES)
def test_segmentation_masks_align_with_their_boxes(detectors, size):
    w, h = size
    found = detectors["seg_full"].detect_all(_image(w, h), 0.25)
    assert len(found) > 5
    interior = [d for d in found if d.box[0] > 1 and d.box[1] > 1 and d.box[2] < w - 1 and d.box[3] < h - 1]
    assert interior, "want boxes away from the image edges, where a letterbox offset would show"
    for det in found:
        assert det.mask_box == det.pixel_box(w, h)
        x0, y0, x1, y1 = det.mask_box
        assert det.mask.shape == (y1 - y0, x1 - x0) and det.mask.dtype == bool
        _assert_fills_box(det, w, h)


def test_mixed_sizes_in_one_batch_pad_to_a_square_and_still_align(detectors):
    images = [_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]
    calls = []
    batch = detectors["seg_full"].detect_batch(images, 0.25, 20, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 2)]
    for dets, (w, h) in zip(batch, SIZES):
        assert 0 < len(dets) <= 20
        for det in dets:
            _assert_fills_box(det, w, h)


@pytest.mark.parametrize("size", SIZES)
def test_masks_agree_with_ultralytics_native_resolution_masks(models, detectors, size):
    """Random protos give ragged shapes: ours must match ultralytics' retina masks, not just boxes."""
    w, h = size
    image = _image(w, h, seed=3)
    found = detectors["seg"].detect_all(image, 0.25)
    ref = _reference(models["seg"], [image], retina_masks=True)[0]
    assert len(found) == len(ref.boxes) > 0
    ious = []
    for det, ref_mask in zip(found, ref.masks.data.numpy() > 0.5):
        ours = det.full_mask(w, h)
        union = (ours | ref_mask).sum()
        if union:
            ious.append((ours & ref_mask).sum() / union)
    assert np.mean(ious) > 0.9, ious


def test_batch_is_one_list_per_image_with_progress(detectors):
    images = [_image(320, 240, seed=i) for i in range(3)]
    calls = []
    batch = detectors["det"].detect_batch(images, 0.25, 4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 3)]
    assert [len(d) for d in batch] == [4, 4, 4]
    single = detectors["det"].detect(images[1], 0.25, 4)
    np.testing.assert_allclose([d.box for d in single], [d.box for d in batch[1]], atol=1e-3)


def test_confidence_above_every_score_finds_nothing(detectors):
    assert detectors["seg_full"].detect_all(_image(200, 100), 0.9999999) == []
    assert detectors["det"].detect_batch([], 0.5, 6) == []


def test_a_classifier_is_refused_loudly(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "cls.pt"
    YOLO("yolov8n-cls.yaml").save(path)
    with pytest.raises(ModelNotAvailable, match="classify"):
        YoloDetector(find_model("face_yolov8n"), path, device="cpu")


def test_loader_finds_registry_file_in_bbox_folder(tmp_path, models):
    bbox, segm = tmp_path / "bbox", tmp_path / "segm"
    bbox.mkdir()
    segm.mkdir()
    (bbox / "face_yolov8n.pt").write_bytes(models["det"].read_bytes())
    dirs = ModelDirs(bbox=(bbox,), segm=(segm,), mediapipe=(tmp_path / "mediapipe",))
    try:
        det = load_detector("runware:35@1", dirs, device="cpu")
        assert isinstance(det, YoloDetector) and det.name == "face_yolov8n"
        assert det.path == bbox / "face_yolov8n.pt"
        assert load_detector("face_yolov8n", dirs, device="cpu") is det
        assert det.detect(_image(320, 200), 0.25, 3)
    finally:
        loader.clear_cache()


def test_loader_names_folder_and_url_when_file_is_missing(tmp_path):
    dirs = ModelDirs(bbox=(tmp_path / "bbox",), segm=(tmp_path / "segm",), mediapipe=(tmp_path / "mp",))
    with pytest.raises(ModelNotAvailable) as err:
        load_detector("person_yolov8n-seg", dirs)
    message = str(err.value)
    assert str(tmp_path / "segm") in message
    assert "https://huggingface.co/Bingsu/adetailer/resolve/main/person_yolov8n-seg.pt" in message
