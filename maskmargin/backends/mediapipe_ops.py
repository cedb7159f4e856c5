"""The steps of MediaPipe's graphs around the models, on tensors: image to tensor (letterbox or a turned
square crop, sampled as OpenCV's warpPerspective does), SSD anchors, box and keypoint decoding, weighted
non-maximum suppression, detection-to-ROI and projection back to image pixels.

Conventions: an ROI is (centre x, centre y, width, height, rotation) in image pixels, rotation in radians
clockwise on screen (y down). Pixel centres sit at whole numbers, as in OpenCV.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

Grid = TypeVar("Grid", torch.Tensor, np.ndarray)


def images_to_tensors(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """RGB uint8 [H, W, 3] arrays -> uint8 [1, 3, H, W] tensors on `device` (sampled straight from uint8)."""
    out = []
    for image in images:
        with warnings.catch_warnings():  # read-only arrays are fine: the tensor is only read
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(np.ascontiguousarray(image[..., :3])).to(device, non_blocking=True)
        out.append(t.permute(2, 0, 1).unsqueeze(0))
    return out


def letterbox_roi(width: int, height: int) -> tuple[float, float, float, float, float]:
    """The whole image padded to a square (keep_aspect_ratio), as the detectors see it."""
    side = float(max(width, height))
    return width / 2.0, height / 2.0, side, side, 0.0


def roi_grid(rois: Grid, out_h: int, out_w: int) -> Grid:
    """[N, out_h, out_w, 2] source pixel coordinates (x, y) of every output pixel of each ROI [N, 5]: a
    tensor for a tensor (on its device), a numpy array for a numpy array (the CPU path: numpy's single
    thread, no torch thread pool to wait on under load); the same float arithmetic, so the same numbers.

    Output pixel (u, v) maps to centre + R(rotation) @ ((u / out_w - 0.5) * width, (v / out_h - 0.5) * height):
    the ROI's corners go to the output's corners (0, 0) and (out_w, out_h), as with cv2.boxPoints into
    cv2.getPerspectiveTransform.
    """
    steps = [np.arange(n, dtype=np.float64) / n - 0.5 for n in (out_w, out_h)]
    rot = np.asarray(rois[:, 4].tolist(), dtype=np.float64)  # cos and sin from one library for both kinds
    turns = [np.cos(rot)[:, None, None], np.sin(rot)[:, None, None], steps[0][None, None, :], steps[1][None, :, None]]
    if isinstance(rois, torch.Tensor):
        c, s, u, v = (torch.from_numpy(a).to(rois.device, rois.dtype) for a in turns)
        stack = torch.stack
    else:
        c, s, u, v = (a.astype(rois.dtype) for a in turns)
        stack = np.stack
    cx, cy, w, h = (rois[:, i, None, None] for i in range(4))
    du, dv = u * w, v * h
    return stack([cx + c * du - s * dv, cy + s * du + c * dv], -1)


def _warp(image: torch.Tensor, grid: torch.Tensor, border: str) -> torch.Tensor:
    """OpenCV's INTER_LINEAR warp of a uint8 image, exactly: source positions rounded to 1/32 pixel, the
    four weights products of those 32nds (so exact in 15-bit fixed point), the sum rounded half up.

    `image` [3, H, W] (0..255 values), `grid` [N, h, w, 2] source pixel positions -> [N, 3, h, w].
    """
    _, ih, iw = image.shape
    n, oh, ow, _ = grid.shape
    q = torch.round(grid.reshape(-1, 2) * 32).long()
    whole, frac = q >> 5, (q & 31).float()  # floor and 32nds, negatives included
    x0, y0 = whole[:, 0], whole[:, 1]
    fx, fy = frac[:, 0], frac[:, 1]
    flat = image.permute(1, 2, 0).reshape(-1, 3)  # no copy for a view of an HWC array
    total = torch.zeros((x0.shape[0], 3), device=image.device, dtype=torch.float32)
    for dy, wy in ((0, 32 - fy), (1, fy)):
        y = y0 + dy
        y_in = (y >= 0) & (y < ih)
        row = y.clamp(0, ih - 1) * iw
        for dx, wx in ((0, 32 - fx), (1, fx)):
            x = x0 + dx
            weight = wx * wy
            if border == "zeros":
                weight = weight * (y_in & (x >= 0) & (x < iw))
            total.addcmul_(flat[row + x.clamp(0, iw - 1)].float(), weight[:, None])
    out = torch.floor(total / 1024 + 0.5)
    return out.reshape(n, oh, ow, 3).permute(0, 3, 1, 2)


def sample_rois(
    images: Sequence[torch.Tensor],
    rois: torch.Tensor,
    owners: Sequence[int],
    size: tuple[int, int],
    border: str = "zeros",
    signed: bool = False,
) -> torch.Tensor:
    """[N, 3, h, w] model inputs cut from `rois` [N, 5] (ROI i from images[owners[i]]), sampled as MediaPipe
    warps the uint8 image, then scaled to 0..1 (or -1..1 when `signed`). `border`: "zeros" (BORDER_CONSTANT)
    or "border" (BORDER_REPLICATE). CPU images go through OpenCV and numpy (`_crops_opencv`: no torch
    thread pool to wait on), others through the same arithmetic in torch (`_warp`)."""
    if all(image.device.type == "cpu" for image in images):
        return _crops_opencv(images, roi_grid(rois.double().cpu().numpy(), *size), owners, border, signed)
    grid = roi_grid(rois.double(), *size)
    return _crops_torch(images, grid, [float(r) != 0.0 for r in rois[:, 4].tolist()], owners, border, signed)


def _crops_torch(
    images: Sequence[torch.Tensor],
    grid: torch.Tensor,
    turned: list[bool],
    owners: Sequence[int],
    border: str,
    signed: bool,
) -> torch.Tensor:
    """`sample_rois` on a device: `_warp` for each image's crops (`_warp_separable` for a lone unturned one)."""
    n, out_h, out_w, _ = grid.shape
    owners_t = torch.as_tensor(list(owners), dtype=torch.long)
    out = torch.empty(n, 3, out_h, out_w, device=grid.device, dtype=torch.float32)
    for k, image in enumerate(images):
        picked = torch.nonzero(owners_t == k).flatten().to(grid.device)
        if not picked.numel():
            continue
        if len(picked) == 1 and not turned[int(picked[0])]:  # unturned (letterbox): rows and columns apart
            out[picked] = _warp_separable(image[0], grid[picked[0]], border)
        else:
            out[picked] = _warp(image[0], grid[picked], border)
    return out / 127.5 - 1.0 if signed else out / 255.0


def _crops_opencv(
    images: Sequence[torch.Tensor], grid: np.ndarray, owners: Sequence[int], border: str, signed: bool
) -> torch.Tensor:
    """`sample_rois` on the CPU: cv2.remap with fixed-point maps (whole pixel + the 32nds as a table index)
    does `_warp`'s arithmetic bit for bit, whatever OpenCV version is installed (warpPerspective itself
    changed its rounding in OpenCV 5), in one C call per crop."""
    import cv2  # installed with ultralytics

    n, out_h, out_w, _ = grid.shape
    mode = cv2.BORDER_CONSTANT if border == "zeros" else cv2.BORDER_REPLICATE
    q = np.rint(grid * 32).astype(np.int32)
    whole = (q >> 5).astype(np.int16)
    table = ((q[..., 1] & 31) * 32 + (q[..., 0] & 31)).astype(np.uint16)
    out = np.empty((n, out_h, out_w, 3), dtype=np.uint8)
    hwc = [image[0].permute(1, 2, 0).numpy() for image in images]  # views of the caller's HWC arrays
    for i, owner in enumerate(owners):
        source = hwc[owner] if hwc[owner].flags.c_contiguous else np.ascontiguousarray(hwc[owner])
        cv2.remap(source, whole[i], table[i], cv2.INTER_LINEAR, out[i], mode, 0)
    scaled = out.astype(np.float32)  # the same float32 divisions as the torch path, bit for bit
    scaled = (
        np.subtract(np.divide(scaled, 127.5, out=scaled), 1.0, out=scaled)
        if signed
        else np.divide(scaled, 255.0, out=scaled)
    )
    return torch.from_numpy(scaled).permute(0, 3, 1, 2)


def _warp_separable(image: torch.Tensor, grid: torch.Tensor, border: str) -> torch.Tensor:
    """`_warp` for an unturned grid [h, w, 2] (x depends on the column only, y on the row only): two row
    reads and two column reads instead of four reads per output pixel; the same numbers."""
    _, ih, iw = image.shape
    qx = torch.round(grid[0, :, 0] * 32).long()
    qy = torch.round(grid[:, 0, 1] * 32).long()
    x0, fx = qx >> 5, (qx & 31).float()
    y0, fy = qy >> 5, (qy & 31).float()
    hwc = image.permute(1, 2, 0)
    rows = []
    for dy, wy in ((0, 32 - fy), (1, fy)):
        y = y0 + dy
        if border == "zeros":
            wy = wy * ((y >= 0) & (y < ih))
        rows.append((hwc.index_select(0, y.clamp(0, ih - 1)), wy))
    total = torch.zeros((len(qy), len(qx), 3), device=image.device, dtype=torch.float32)
    for dx, wx in ((0, 32 - fx), (1, fx)):
        x = x0 + dx
        if border == "zeros":
            wx = wx * ((x >= 0) & (x < iw))
        cols = x.clamp(0, iw - 1)
        for picked_rows, wy in rows:
            weight = wy[:, None, None] * wx[None, :, None]
            total.addcmul_(picked_rows.index_select(1, cols).float(), weight)
    return torch.floor(total / 1024 + 0.5).permute(2, 0, 1).unsqueeze(0)


@dataclass(frozen=True)
class AnchorOptions:
    input_size: int
    strides: tuple[int, ...]
    interpolated: bool  # an extra anchor per aspect ratio (interpolated_scale_aspect_ratio > 0)


@lru_cache(maxsize=8)
def _anchors_np(options: AnchorOptions) -> np.ndarray:
    """SSD anchor centres [A, 2] (x, y, 0..1) for fixed-size anchors; layers of one stride share a grid."""
    centres = []
    strides = list(options.strides)
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = (j - i) * (2 if options.interpolated else 1)
        cells = math.ceil(options.input_size / strides[i])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], -1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


_anchor_cache: dict[tuple[AnchorOptions, str], torch.Tensor] = {}


def anchors(options: AnchorOptions, device: torch.device) -> torch.Tensor:
    key = (options, str(device))
    found = _anchor_cache.get(key)
    if found is None:
        found = _anchor_cache[key] = torch.from_numpy(_anchors_np(options)).to(device)
    return found


def scores_of(raw_scores: torch.Tensor) -> torch.Tensor:
    """[B, A, 1] raw score logits -> [B, A] scores (sigmoid of the logit clipped to +-100)."""
    return torch.sigmoid(raw_scores[..., 0].clamp(-100.0, 100.0))


def decode(raw_boxes: torch.Tensor, centres: torch.Tensor, scale: float, num_keypoints: int) -> torch.Tensor:
    """[..., 4 + 2K] raw regressors of anchors with `centres` [..., 2] -> boxes [..., 4 + 2K] (x0, y0, x1, y1,
    then keypoints x, y; 0..1 of the model input). Given only the anchors that pass the score cut: a few
    rows instead of thousands, and so no torch thread pool to wait on."""
    raw = raw_boxes / scale
    cx = raw[..., 0] + centres[..., 0]
    cy = raw[..., 1] + centres[..., 1]
    w, h = raw[..., 2], raw[..., 3]
    kx = raw[..., 4 : 4 + 2 * num_keypoints : 2] + centres[..., 0, None]
    ky = raw[..., 5 : 5 + 2 * num_keypoints : 2] + centres[..., 1, None]
    box = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kps = torch.stack([kx, ky], -1).flatten(-2)
    return torch.cat([box, kps], -1)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression: the best remaining detection takes every detection
    overlapping it by IoU > threshold (itself included) and becomes their score-weighted mean (boxes and
    keypoints); it keeps its own score. `boxes` [N, 4 + 2K] (x0, y0, x1, y1, ...)."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order].astype(np.float64), scores[order].astype(np.float64)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    remaining = np.arange(len(scores))
    out_boxes, out_scores = [], []
    while remaining.size:
        top = remaining[0]
        b = boxes[remaining]
        iw = np.minimum(b[:, 2], boxes[top, 2]) - np.maximum(b[:, 0], boxes[top, 0])
        ih = np.minimum(b[:, 3], boxes[top, 3]) - np.maximum(b[:, 1], boxes[top, 1])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        union = area[remaining] + area[top] - inter
        iou = np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        near = iou > threshold
        near[0] = True
        members = remaining[near]
        w = scores[members]
        out_boxes.append((boxes[members] * w[:, None]).sum(0) / w.sum())
        out_scores.append(scores[top])
        remaining = remaining[~near]
    if not out_boxes:
        return np.zeros((0, boxes.shape[1])), np.zeros(0)
    return np.stack(out_boxes), np.array(out_scores)


def project_letterbox(points: np.ndarray, roi: tuple[float, float, float, float, float]) -> np.ndarray:
    """Model-input coordinates (0..1, [..., 2k]) of an unturned ROI -> image pixels."""
    cx, cy, w, h, _ = roi
    out = np.array(points, dtype=np.float64)
    out[..., 0::2] = cx - w / 2 + out[..., 0::2] * w
    out[..., 1::2] = cy - h / 2 + out[..., 1::2] * h
    return out


def project_points(points: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """[N, P, 2] points in 0..1 of each (turned) ROI -> image pixels [N, P, 2]."""
    cx, cy, w, h, rot = (t[:, None] for t in rois.unbind(-1))
    x = (points[..., 0] - 0.5) * w
    y = (points[..., 1] - 0.5) * h
    c, s = torch.cos(rot), torch.sin(rot)
    return torch.stack([cx + c * x - s * y, cy + s * x + c * y], -1)


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def detection_roi(
    box: Sequence[float] | np.ndarray,
    start: Sequence[float] | np.ndarray,
    end: Sequence[float] | np.ndarray,
    target: float,
    scale: float,
    shift_y: float = 0.0,
) -> tuple[float, float, float, float, float]:
    """MediaPipe's DetectionsToRects + RectTransformation(square_long) in pixels: the box centre, turned
    so that start -> end points at `target` radians, its long side times `scale`, shifted by `shift_y`
    of the box height along the turned vertical."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    rotation = normalize_radians(
        target - math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0]))
    )
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shift_y:
        cx += -h * shift_y * math.sin(rotation)
        cy += h * shift_y * math.cos(rotation)
    side = max(w, h) * scale
    return cx, cy, side, side, rotation


def as_box(values: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as plain floats."""
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])
