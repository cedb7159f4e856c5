"""The TFLite reader and torch interpreter (maskmargin/tflite) on MediaPipe's own model files."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from maskmargin.backends import mediapipe_files as files
from maskmargin.loader import ModelDirs
from maskmargin.tflite.interpreter import densify, load
from maskmargin.tflite.schema import Sparsity, read_model


def model_path(name: str):
    path = files.find_file(name, ModelDirs().mediapipe)
    if path is None:
        pytest.fail(files.missing_message([name], ModelDirs().mediapipe))
    return path


def test_a_file_that_is_not_tflite_is_refused():
    with pytest.raises(ValueError, match="TFL3"):
        read_model(b"\x00" * 64)


def test_densify_fills_csr_rows_over_the_last_dimension():
    # 2x1x1x4 with row 0 = [0, 5, 0, 6], row 1 = [7, 0, 0, 0]
    sparsity = Sparsity(
        [0, 1, 2, 3],
        [0, 0, 0, 1],
        [2, 1, 1, 0],
        [None, None, None, np.array([0, 2, 3])],
        [None, None, None, np.array([1, 3, 0])],
    )
    dense = densify(np.array([5.0, 6.0, 7.0]), (2, 1, 1, 4), sparsity)
    assert dense.reshape(2, 4).tolist() == [[0, 5, 0, 6], [7, 0, 0, 0]]


def test_the_full_range_detector_has_46_sparse_weights_folded_at_load():
    model = read_model(model_path("face_detection_full_range_sparse.tflite").read_bytes())
    sparse = [t for t in model.tensors if t.sparsity is not None]
    assert len(sparse) == 46
    assert {t.sparsity.indices[-1].dtype for t in sparse} == {np.dtype("int64")}
    assert all(t.dtype == np.float16 for t in sparse)
    ops = Counter(o.op for o in model.operators)
    assert ops["DENSIFY"] == 46 and ops["DEQUANTIZE"] > 0
    module = load(model_path("face_detection_full_range_sparse.tflite"))
    assert len(module._pad_alias) == ops["PAD"] == 43, "every PAD is done by the convolution after it"
    assert len(module._steps) == len(model.operators) - ops["DENSIFY"] - ops["DEQUANTIZE"] - ops["PAD"]
    assert all(b.dtype in (torch.float32, torch.int64) for b in module.buffers())


@pytest.mark.parametrize(
    "name",
    [
        "face_detection_short_range.tflite",
        "face_detection_full_range_sparse.tflite",
        "face_landmark_with_attention.tflite",
        "palm_detection_full.tflite",
        "hand_landmark_full.tflite",
        "selfie_segmentation.tflite",
    ],
)
def test_a_batch_gives_what_each_image_gives_alone(name):
    module = load(model_path(name))
    _, h, w, c = module.input_shape
    x = torch.rand(3, c, h, w, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        together = module(x)
        alone = [module(x[i : i + 1]) for i in range(3)]
    for k, out in enumerate(together):
        assert out.shape[0] == 3
        for i in range(3):
            assert torch.allclose(out[i : i + 1], alone[i][k], rtol=1e-4, atol=1e-4), (name, k, i)


def test_the_module_moves_to_another_device_with_its_constants():
    module = load(model_path("face_detection_short_range.tflite")).to("meta")
    assert {b.device.type for b in module.buffers()} == {"meta"}
    out = module(torch.zeros(2, 3, 128, 128, device="meta"))
    assert [tuple(o.shape) for o in out] == [(2, 896, 16), (2, 896, 1)]
