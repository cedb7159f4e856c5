"""MediaPipe's custom TFLite operators, batched in torch.

The face mesh with attention crops its own feature maps around the lips and eyes:
Landmarks2TransformMatrix turns predicted landmarks into an affine map, TransformTensorBilinear samples a
feature map through it, TransformLandmarks maps the refined landmarks back. Selfie segmentation ends in
Convolution2DTransposeBias (a transposed convolution with bias, SAME padding).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .interpreter import Step, TFLiteModule
    from .schema import Operator


def _flex_options(op: Operator) -> dict[str, Any]:
    from flatbuffers import flexbuffers

    if not op.custom_options:
        return {}
    value = flexbuffers.Loads(op.custom_options)
    return value if isinstance(value, dict) else {}


def _rotation(a: float | torch.Tensor) -> torch.Tensor:
    """[..., 2, 2] rotation by angle(s) `a` (x right, y down)."""
    a = torch.as_tensor(a)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _apply(mat: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Points [B or 1, P, 2] through [B, 2, 2] matrices (pts @ mat^T), written out elementwise: a batched
    matmul this small wakes BLAS's thread pool, whose wait costs a scheduler slice on a busy CPU."""
    x, y = pts[..., 0], pts[..., 1]
    return torch.stack(
        [x * mat[:, None, 0, 0] + y * mat[:, None, 0, 1], x * mat[:, None, 1, 0] + y * mat[:, None, 1, 1]], -1
    )


def landmarks_to_transform_matrix(module: TFLiteModule, op: Operator) -> Step:
    """[B, N, 3] landmarks -> [B, 4, 4]: the map from an output grid to the box around a landmark subset,
    turned so that the left/right landmarks lie level (version 2 of the op)."""
    if op.version != 2:
        raise ValueError(f"Landmarks2TransformMatrix version {op.version} is not supported")
    p = _flex_options(op)
    left, right = int(p["left_rotation_idx"]), int(p["right_rotation_idx"])
    target = float(p.get("target_rotation_radians", 0.0))
    subset = torch.tensor([int(i) for i in p["subset_idxs"]], dtype=torch.long)
    out_w, out_h = int(p["output_width"]), int(p["output_height"])
    scale_x, scale_y = float(p["scale_x"]), float(p["scale_y"])
    src, dst = op.inputs[0], op.outputs[0]

    def step(env: list) -> None:
        marks = env[src][..., :2]
        d = marks[:, right] - marks[:, left]
        rotation = target - torch.atan2(d[:, 1], d[:, 0])  # [B]
        pts = marks[:, subset.to(marks.device)]  # [B, K, 2]
        turn = _rotation(rotation)
        back = turn.transpose(-1, -2)  # the turn undone: output frame -> landmark frame
        turned = _apply(turn, pts)  # pts @ back
        lo, hi = turned.amin(1), turned.amax(1)
        size = hi - lo
        centre = _apply(back, ((lo + hi) / 2).unsqueeze(1))[:, 0]  # back to the landmarks' frame
        sx = scale_x * size[:, 0] / out_w
        sy = scale_y * size[:, 1] / out_h
        linear = back * torch.stack([sx, sy], -1).unsqueeze(-2)  # columns scaled
        half = torch.tensor([[[out_w / 2.0, out_h / 2.0]]], device=marks.device, dtype=marks.dtype)
        shift = centre - _apply(linear, half)[:, 0]
        mat = torch.zeros(marks.shape[0], 4, 4, device=marks.device, dtype=marks.dtype)
        mat[:, :2, :2] = linear
        mat[:, :2, 3] = shift
        mat[:, 2, 2] = 1.0
        mat[:, 3, 3] = 1.0
        env[dst] = mat

    return step


def transform_tensor_bilinear(module: TFLiteModule, op: Operator) -> Step:
    """Sample a [B, C, H, W] feature map at an [oh, ow] grid mapped by a [B, 4, 4] matrix (version 2:
    pixel centres at +0.5); points outside the map read zero."""
    if op.version != 2:
        raise ValueError(f"TransformTensorBilinear version {op.version} is not supported")
    _, out_h, out_w, _ = module.shape(op.outputs[0])
    _, in_h, in_w, _ = module.shape(op.inputs[0])
    src, mat_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]

    grids: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}  # the output's pixel centres, made once

    def step(env: list) -> None:
        x, m = env[src], env[mat_index]
        grid = grids.get((x.device, x.dtype))
        if grid is None:  # a normal tensor even when made in inference mode: later calls may record autograd
            with torch.inference_mode(False):
                ys, xs = torch.meshgrid(
                    torch.arange(out_h, device=x.device, dtype=x.dtype) + 0.5,
                    torch.arange(out_w, device=x.device, dtype=x.dtype) + 0.5,
                    indexing="ij",
                )
                grid = grids[(x.device, x.dtype)] = torch.stack([xs, ys], -1).reshape(1, -1, 2)  # [1, P, 2]
        tc = _apply(m[:, :2, :2], grid) + m[:, None, :2, 3] - 0.5  # [B, P, 2]
        inside = (tc[..., 0] >= 0) & (tc[..., 0] <= in_w - 1) & (tc[..., 1] >= 0) & (tc[..., 1] <= in_h - 1)
        norm = torch.stack([tc[..., 0] * (2.0 / (in_w - 1)) - 1.0, tc[..., 1] * (2.0 / (in_h - 1)) - 1.0], -1)
        out = F.grid_sample(x, norm.view(-1, out_h, out_w, 2), mode="bilinear", align_corners=True)
        env[dst] = out * inside.view(-1, 1, out_h, out_w).to(out.dtype)

    return step


def transform_landmarks(module: TFLiteModule, op: Operator) -> Step:
    """[B, N, D] landmarks mapped through the [B, 4, 4] matrix (x, y; a third value is kept as is)."""
    if op.version != 2:
        raise ValueError(f"TransformLandmarks version {op.version} is not supported")
    src, mat_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]

    def step(env: list) -> None:
        marks, m = env[src], env[mat_index]
        xy = _apply(m[:, :2, :2], marks[..., :2]) + m[:, None, :2, 3]
        env[dst] = torch.cat([xy, marks[..., 2:]], -1) if marks.shape[-1] > 2 else xy

    return step


def convolution_2d_transpose_bias(module: TFLiteModule, op: Operator) -> Step:
    """Transposed convolution with bias; options are a packed (padding, stride_w, stride_h) int32 struct."""
    padding, stride_w, stride_h = struct.unpack_from("<3i", op.custom_options, 0)
    weight = module._const[op.inputs[1]]  # [O, kh, kw, I]
    w = module._buffer(weight.transpose(3, 0, 1, 2).astype("float32"))  # [I, O, kh, kw]
    b = module._buffer(module._const[op.inputs[2]].astype("float32"))
    _, kh, kw, _ = weight.shape
    _, in_h, in_w, _ = module.shape(op.inputs[0])
    _, out_h, out_w, _ = module.shape(op.outputs[0])
    if padding == 1:  # VALID: the full output
        top = left = 0
    else:
        top = max((in_h - 1) * stride_h + kh - out_h, 0) // 2
        left = max((in_w - 1) * stride_w + kw - out_w, 0) // 2
    src, dst = op.inputs[0], op.outputs[0]

    def step(env: list) -> None:
        y = F.conv_transpose2d(env[src], module.buf(w), module.buf(b), (stride_h, stride_w))
        env[dst] = y[:, :, top : top + out_h, left : left + out_w]

    return step


BUILDERS: dict[str, Callable[[TFLiteModule, Operator], Step]] = {
    "Landmarks2TransformMatrix": landmarks_to_transform_matrix,
    "TransformTensorBilinear": transform_tensor_bilinear,
    "TransformLandmarks": transform_landmarks,
    "Convolution2DTransposeBias": convolution_2d_transpose_bias,
}
