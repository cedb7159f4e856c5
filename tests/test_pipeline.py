"""Image Mask (pipeline.image_mask): masks per image, input untouched, batching chosen by the detector's flag."""

from collections.abc import Sequence

import numpy as np
import torch
from photos import ASTRONAUT_IMAGE

from maskmargin.backends.base import Detector
from maskmargin.detection import Detection, ImageDetections
from maskmargin.loader import load_detector
from maskmargin.pipeline import image_mask
from maskmargin.registry import find_model
from maskmargin.settings import MaskSettings, Progress


class Recording(Detector):
    """A detector that finds one fixed box and records how it was called."""

    def __init__(self, batches: bool):
        super().__init__(find_model("face_yolov8n"))
        self.batches = batches  # type: ignore[misc]
        self.calls: list[str] = []

    def detect_all(self, image: np.ndarray, confidence: float) -> list[Detection]:
        self.calls.append("detect")
        return [Detection((10, 10, 30, 30), 0.9, "face")]

    def detect_batch(
        self, images: Sequence[np.ndarray], confidence: float, max_detections: int, progress: Progress | None = None
    ) -> list[list[Detection]]:
        self.calls.append(f"batch of {len(images)}")
        return super().detect_batch(images, confidence, max_detections, progress)


def test_batching_detectors_get_the_whole_batch_others_one_image_at_a_time():
    images = torch.rand(3, 64, 64, 3)
    batched, single = Recording(batches=True), Recording(batches=False)
    a = image_mask(batched, images, MaskSettings(mask_padding=0, mask_blur=0))
    b = image_mask(single, images, MaskSettings(mask_padding=0, mask_blur=0))
    assert batched.calls[0] == "batch of 3"
    assert sorted(single.calls) == ["batch of 1"] * 3 + ["detect"] * 3
    assert torch.equal(a.masks, b.masks)
    assert a.masks[:, 10:30, 10:30].eq(1).all() and a.masks.sum() == 3 * 400


def test_face_mask_of_the_astronaut_and_the_input_is_untouched():
    batch = ASTRONAUT_IMAGE.unsqueeze(0).repeat(2, 1, 1, 1)
    before = batch.clone()
    result = image_mask(load_detector("mediapipe_face_full"), batch, MaskSettings(), with_preview=True)
    assert torch.equal(batch, before)
    assert result.masks.shape == (2, 512, 512) and torch.equal(result.masks[0], result.masks[1])
    assert result.masks[0, 120, 225] == 1 and result.masks[0, 450, 50] == 0
    (box,) = result.to_api()[0]
    assert 150 < box["x_min"] < 200 and 250 < box["x_max"] < 310
    assert result.preview.shape == (2, 512, 512, 3) and not torch.equal(result.preview[0], batch[0])


def test_cpu_and_torch_preview_kernels_agree():
    """The mask tint drawn in numpy (CPU tensors) and in torch (other devices) is the same picture."""
    from maskmargin.masks import build_masks
    from maskmargin.preview import _tint_np, _tint_torch

    found = [ImageDetections(300, 200, (Detection((40.0, 30.0, 120.0, 150.0), 0.9, "face"),))]
    masks = build_masks(found, 4, 6)
    rows, cols = torch.arange(0, 200, 2), torch.arange(0, 300, 2)
    for dtype, peak in ((torch.uint8, 255.0), (torch.float32, 1.0)):
        base = (torch.rand(100, 150, 3) * peak).to(dtype)
        a, b = base.clone(), base.clone()
        _tint_np(a.numpy(), masks[0].numpy(), (rows.numpy(), cols.numpy()), peak)
        _tint_torch(b, masks[0], (rows, cols), peak)
        diff = (a.float() - b.float()).abs().max()
        assert diff <= (1 if dtype == torch.uint8 else 1e-6) and not torch.equal(a, base)


def test_image_masks_remember_where_they_can_be_set_for_the_crop():
    """Image Mask's masks carry their support (masks.known_support) on both detector paths: the boxes grown
    by padding and blur, holding every masked pixel; Mask Margin Crop reads only there."""
    from maskmargin.masks import known_support

    images = torch.rand(2, 64, 64, 3)
    for batches in (True, False):
        result = image_mask(Recording(batches=batches), images, MaskSettings(mask_padding=3, mask_blur=5))
        assert known_support(result.masks) == (((2, 2, 38, 38),), ((2, 2, 38, 38),))
        outside = result.masks.clone()
        outside[:, 2:38, 2:38] = 0
        assert result.masks.gt(0).any() and not outside.any()


def test_under_inference_mode_the_masks_still_show_a_change():
    """ComfyUI runs nodes under inference mode, whose tensors keep no version counter: Image Mask's masks
    are made as ordinary tensors, so a later in-place change (another node's) still drops their support."""
    from maskmargin.masks import known_support

    with torch.inference_mode():
        result = image_mask(
            Recording(batches=True), torch.rand(1, 64, 64, 3), MaskSettings(mask_padding=0, mask_blur=0)
        )
        assert not result.masks.is_inference() and known_support(result.masks) == (((10, 10, 30, 30),),)
        result.masks[0, 50:60, 50:60] = 1.0
        assert known_support(result.masks) is None
