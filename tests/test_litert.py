"""The CPU forward through LiteRT (maskmargin/tflite/litert.py) against the torch module, on MediaPipe's files.

The same file is the program on both: LiteRT where it runs the operators, the module's own steps for
MediaPipe's custom ones (the attention mesh is cut around them into sub-graphs)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_tflite import model_path

from maskmargin.backends import mediapipe_ops as ops
from maskmargin.tflite import litert
from maskmargin.tflite.interpreter import load
from maskmargin.tflite.schema import read_model

MODELS = [
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_landmark.tflite",
    "face_landmark_with_attention.tflite",
    "palm_detection_full.tflite",
    "hand_landmark_full.tflite",
    "selfie_segmentation.tflite",
]


def test_ai_edge_litert_is_installed_by_make_test():
    assert litert.installed(), litert.INSTALL_HINT


@pytest.mark.parametrize("name", MODELS)
def test_litert_gives_what_the_torch_module_gives(name, monkeypatch):
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, "litert")
    module = load(model_path(name))
    _, h, w, c = module.input_shape
    x = torch.rand(3, c, h, w, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.inference_mode():
        expected = module.forward(x)
        got = module.fast(x)
    assert module._litert is not None
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g.shape == e.shape and g.dtype == torch.float32
        scale = float(e.abs().max()) or 1.0
        assert float((g - e).abs().max()) <= 2e-4 * scale, name


def test_the_attention_mesh_is_cut_around_its_custom_operators():
    module = load(model_path("face_landmark_with_attention.tflite"))
    runner = litert.LiteRTRunner(module, module.model.data)
    kinds = ["litert" if s.content is not None else "torch" for s in runner.stages]
    # backbone, the crops' matrices and samplers, the refinement heads, the landmarks mapped back
    assert kinds.count("litert") == 2 and kinds[0] == "litert"
    customs = {"Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"}
    for stage in runner.stages:
        if stage.content is None:
            continue
        inner = read_model(stage.content)
        assert not {op.op for op in inner.operators} & customs
        assert len(inner.tensors) == len(module.model.tensors)  # indices kept: no tensor rewritten
    short = load(model_path("face_detection_short_range.tflite"))
    whole = litert.LiteRTRunner(short, short.model.data)
    assert len(whole.stages) == 1 and whole.stages[0].content == short.model.data
    with pytest.raises(RuntimeError, match="MASKMARGIN_TFLITE_RUNTIME=torch runs it in torch"):
        litert.LiteRTRunner(short, short.model.data[:1000])


def test_a_graph_cut_in_two_runs_as_the_whole():
    """Two sub-graphs of the file, the second fed what the first made, give the whole graph's outputs exactly
    (each half keeps the constant-only operators, the fp16 weights' DEQUANTIZE, that its operators read)."""
    data = model_path("face_detection_short_range.tflite").read_bytes()
    model = read_model(data)
    const = {t.index for t in model.tensors if t.data is not None and t.data.size}
    const_ops = [k for k, op in enumerate(model.operators) if all(i < 0 or i in const for i in op.inputs)]
    live = [k for k in range(len(model.operators)) if k not in const_ops]
    first, second = live[: len(live) // 2], live[len(live) // 2 :]
    made = {o for k in first for o in model.operators[k].outputs}
    boundary = sorted(made & {i for k in second for i in model.operators[k].inputs})
    assert boundary
    head = litert.subgraph_bytes(data, sorted(first + const_ops), list(model.inputs), boundary)
    tail = litert.subgraph_bytes(data, sorted(second + const_ops), boundary, list(model.outputs))
    assert read_model(head).outputs == boundary and read_model(tail).inputs == boundary
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(3).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    whole = Interpreter(model_content=data)
    whole.allocate_tensors()
    whole.set_tensor(model.inputs[0], x)
    whole.invoke()
    a, b = Interpreter(model_content=head), Interpreter(model_content=tail)
    a.allocate_tensors()
    b.allocate_tensors()
    a.set_tensor(model.inputs[0], x)
    a.invoke()
    for i in boundary:
        b.set_tensor(i, a.get_tensor(i))
    b.invoke()
    for o in model.outputs:
        assert np.array_equal(whole.get_tensor(o), b.get_tensor(o))
    with pytest.raises(ValueError, match="increasing"):
        litert.subgraph_bytes(data, [3, 1], [], [])


def test_the_runtime_variable_is_checked(monkeypatch):
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, "tpu")
    with pytest.raises(litert.RuntimeChoiceError, match="auto, torch, litert"):
        litert.runtime()
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, "torch")
    module = load(model_path("face_detection_short_range.tflite"))
    with torch.inference_mode():
        module.fast(torch.zeros(1, 3, 128, 128))
    assert module._litert is None, "torch asked for: LiteRT is never built"
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, "auto")
    assert litert.runtime() == "litert"
    monkeypatch.setenv(litert.THREADS_VARIABLE, "none")
    with pytest.raises(litert.RuntimeChoiceError, match="whole number"):
        litert.threads()


def test_without_ai_edge_litert_auto_means_torch_and_litert_says_how_to_install():
    """A real failed import (the package hidden from this child process), not a patched flag."""
    code = (
        "import sys; sys.modules['ai_edge_litert'] = None\n"
        "import os, torch\n"
        "from maskmargin.tflite import litert\n"
        "assert litert.runtime() == 'torch'\n"
        "os.environ[litert.RUNTIME_VARIABLE] = 'litert'\n"
        "try:\n    litert.runtime()\nexcept litert.RuntimeChoiceError as e:\n    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != litert.RUNTIME_VARIABLE}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "ai-edge-litert is not installed: pip install ai-edge-litert" in run.stdout


@pytest.mark.parametrize("border", ["zeros", "border"])
def test_opencv_crops_equal_the_torch_warp_bit_for_bit(border):
    """The CPU path (cv2.remap with fixed-point maps) and the device path (torch) of sample_rois agree exactly,
    turned and unturned, inside and across the image's edges."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (300, 420, 3), dtype=np.uint8), rng.integers(0, 256, (257, 199, 3), dtype=np.uint8)]
    tensors = ops.images_to_tensors(images, torch.device("cpu"))
    rois = torch.tensor(
        [
            [210, 150, 420, 420, 0.0],
            [100.3, 80.7, 90.2, 90.2, 0.3],
            [400, 20, 120, 120, -1.2],
            [37.25, 250.5, 60.0, 60.0, 3.0],
            [99.5, 128.5, 257.0, 257.0, 0.0],
        ],
        dtype=torch.float64,
    )
    owners = [0, 0, 1, 1, 1]
    turned = [float(r) != 0 for r in rois[:, 4]]
    grid = ops.roi_grid(rois, 64, 48)
    assert np.array_equal(ops.roi_grid(rois.numpy(), 64, 48), grid.numpy()), "numpy's grid is torch's"
    for signed in (False, True):
        cpu = ops._crops_opencv(tensors, grid.numpy(), owners, border, signed)
        device = ops._crops_torch(tensors, grid, turned, owners, border, signed)
        assert cpu.shape == (5, 3, 64, 48) and cpu.dtype == torch.float32
        assert torch.equal(cpu, device)
        assert torch.equal(ops.sample_rois(tensors, rois, owners, (64, 48), border, signed), cpu)
    assert float(cpu.min()) >= -1.0 and float(cpu.max()) <= 1.0 and float(cpu.min()) < 0
    warped = torch.cat([ops._warp(tensors[o][0], grid[i : i + 1], border) for i, o in enumerate(owners)])
    assert torch.equal(ops._warp_separable(tensors[0][0], grid[0], border), warped[:1])
    assert torch.equal(ops._crops_opencv(tensors, grid.numpy(), owners, border, False) * 255.0, warped)
