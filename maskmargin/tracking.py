"""Video tracking: the detections of a batch of frames linked into tracks with stable ids, each track's box
smoothed over the whole batch, and the masks rebuilt at the smoothed boxes.

Detected frame by frame, a face's box carries a pixel or two of detector noise; Mask Margin Crop's window
follows it, so the zoom shakes and the inpainted face shimmers, a face missed in one frame pops out, and the
order of a frame's regions (so their prompts) can swap. Here:

- Association, frame by frame: a constant-velocity Kalman filter per track (on the box's centre and size)
  predicts where the track is; detections go to tracks greedily, lowest cost first (1 - IoU plus the centre
  distance over the track's size), inside a gate (overlapping, or closer than half the size; size within 2x)
  and only to a track of their own label.
- A new track is tentative until `min_hits` hits in a row; a tentative track missed once was a false
  detection and is dropped. A confirmed track lives through up to `max_missed` frames unseen; a longer gap
  ends it (a face seen again later gets a new id). Ids count from 0 in order of confirmation and are never
  reused. Frames after a track's last hit are not kept: the batch is known, so it is known the face did not
  come back there.
- Smoothing: the batch is known in advance, so each track's filtered states are smoothed backwards
  (Rauch-Tung-Striebel): zero lag, no phase shift, and a gap is bridged from both sides (the face is still
  detailed where it was covered). `smoothing` is the filter's time scale in frames.
- Masks: each tracked detection's part of the mask (its region with the fade band, regions.py) is moved and
  scaled from the detected box to the smoothed one; a frame where the track was not seen takes the part from
  the nearest frame where it was. Mask parts no track owns (detections dropped as false) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import buffers
from .detection import Detection, ImageDetections
from .errors import InvalidParameter
from .masks import remember_support, tracked
from .regions import Region, find_regions
from .settings import Progress
from .workers import each

Box = tuple[float, float, float, float]
Affine = tuple[float, float, float, float]  # x' = sx x + tx, y' = sy y + ty: (sx, sy, tx, ty)

_F = np.array([[1.0, 1.0], [0.0, 1.0]])  # constant velocity, one frame per step
_G = np.array([[0.25, 0.5], [0.5, 1.0]])  # white-noise acceleration over one frame
NOISE = 0.02  # the detector's box noise assumed by the filter, as a share of the box's size
START_SPEED = 0.1  # the spread of a new track's unknown speed, as a share of its size per frame
GATE_DISTANCE = 0.5  # a detection not overlapping the prediction must be closer than this share of its size
GATE_SCALE = 2.0  # and at most this many times larger or smaller
FAINTEST = 1 / 255  # the faintest mask value a moved mask keeps: one 8-bit level
BELOW_FAINTEST = float(np.nextafter(np.float32(FAINTEST), np.float32(0)))  # threshold keeps values above this
MAX_GAP = 1000
MAX_SMOOTHING = 100.0


@dataclass(frozen=True)
class TrackSettings:
    """Validated on creation: errors name the parameter."""

    max_missed: int = 8  # frames a confirmed track may go unseen (its box bridged by the smoother)
    min_hits: int = 2  # hits in a row before a new track is confirmed (gets an id)
    smoothing: float = 4.0  # the smoother's time scale, in frames: larger is steadier, slower to turn

    def __post_init__(self) -> None:
        for name, low in (("max_missed", 0), ("min_hits", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_GAP:
                raise InvalidParameter(
                    f"{name} must be an integer from {low} to {MAX_GAP}, got {value!r}", parameter=name
                )
        value = self.smoothing
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value <= MAX_SMOOTHING:
            raise InvalidParameter(
                f"smoothing must be a number of frames from 0.5 to {MAX_SMOOTHING:g}, got {value!r}",
                parameter="smoothing",
            )


@dataclass(frozen=True)
class Track:
    """One tracked object over consecutive frames, from its first hit to its last."""

    id: int
    label: str
    first: int  # the frame of its first hit
    boxes: tuple[Box, ...]  # smoothed, one per frame from `first`
    seen: tuple[int | None, ...]  # per frame: its detection's index in that frame, None where predicted

    def frames(self) -> range:
        return range(self.first, self.first + len(self.boxes))


@dataclass(frozen=True)
class TrackResult:
    masks: torch.Tensor  # [B, H, W] float32, rebuilt at the smoothed boxes
    detections: list[ImageDetections]  # per frame: the tracks there (smoothed boxes, `track` set), by id
    tracks: list[Track]


class _Filter:
    """A constant-velocity Kalman filter on (cx, cy, w, h), each coordinate on its own, keeping the predicted
    and filtered states of every frame for the backward (smoothing) pass."""

    def __init__(self, z: np.ndarray, smoothing: float) -> None:
        size = math.sqrt(max(float(z[2] * z[3]), 1.0))
        self.r = (NOISE * size) ** 2
        self.q = self.r / smoothing**4  # process noise: the time scale at which the data outweighs the model
        self.x = np.stack([z, np.zeros(4)], axis=1)  # [4, (position, velocity)]
        self.p = np.zeros((4, 2, 2))
        self.p[:, 0, 0], self.p[:, 1, 1] = self.r, (START_SPEED * size) ** 2
        self.predicted = [(self.x, self.p)]
        self.filtered = [(self.x, self.p)]

    def predict(self) -> np.ndarray:
        self.x = self.x @ _F.T
        self.p = _F @ self.p @ _F.T + self.q * _G
        self.predicted.append((self.x, self.p))
        self.filtered.append((self.x, self.p))
        return self.x[:, 0]

    def update(self, z: np.ndarray) -> None:
        gain = self.p[:, :, 0] / (self.p[:, 0, 0] + self.r)[:, None]  # [4, 2]
        self.x = self.x + gain * (z - self.x[:, 0])[:, None]
        self.p = self.p - gain[:, :, None] * self.p[:, None, 0, :]
        self.filtered[-1] = (self.x, self.p)

    def smoothed(self, steps: int) -> np.ndarray:
        """[steps, 4]: the Rauch-Tung-Striebel smoothed (cx, cy, w, h) of the first `steps` frames."""
        xs = self.filtered[steps - 1][0]
        out = [xs[:, 0]]
        for t in range(steps - 2, -1, -1):
            xf, pf = self.filtered[t]
            xp, pp = self.predicted[t + 1]
            gain = pf @ _F.T @ np.linalg.inv(pp)
            xs = xf + (gain @ (xs - xp)[:, :, None])[:, :, 0]
            out.append(xs[:, 0])
        return np.array(out[::-1])


@dataclass
class _Live:
    filter: _Filter
    label: str
    first: int
    seen: list[int | None]
    hits: int = 1
    missed: int = 0
    id: int | None = None
    last_hit: int = field(init=False)

    def __post_init__(self) -> None:
        self.last_hit = len(self.seen)  # frames from `first` to the last hit, that one included

    def finish(self) -> Track:
        assert self.id is not None
        states = self.filter.smoothed(self.last_hit)
        boxes = tuple(
            (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2)) for cx, cy, w, h in states
        )
        return Track(self.id, self.label, self.first, boxes, tuple(self.seen[: self.last_hit]))


def _state(box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


def _cost(predicted: np.ndarray, det: Detection) -> float | None:
    """How badly `det` fits a track predicted at (cx, cy, w, h); None outside the gate."""
    cx, cy, w, h = (float(v) for v in predicted)
    w, h = max(w, 1.0), max(h, 1.0)
    x0, y0, x1, y1 = det.box
    size, found = math.sqrt(w * h), math.sqrt(max((x1 - x0) * (y1 - y0), 1.0))
    if not 1 / GATE_SCALE <= found / size <= GATE_SCALE:
        return None
    ix = min(x1, cx + w / 2) - max(x0, cx - w / 2)
    iy = min(y1, cy + h / 2) - max(y0, cy - h / 2)
    inter = max(ix, 0.0) * max(iy, 0.0)
    iou = inter / (w * h + found * found - inter)
    distance = math.hypot((x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy)
    if iou <= 0 and distance > GATE_DISTANCE * size:
        return None
    return 1.0 - iou + distance / size


def link(found: list[ImageDetections], settings: TrackSettings) -> list[Track]:
    """The confirmed tracks of a batch of frames' detections, by id (see the module's notes)."""
    live: list[_Live] = []
    done: list[_Live] = []
    next_id = 0
    for t, frame in enumerate(found):
        dets = frame.detections
        predicted = [track.filter.predict() for track in live]
        costs = []
        for i, track in enumerate(live):
            for j, det in enumerate(dets):
                cost = _cost(predicted[i], det) if det.label == track.label else None
                if cost is not None:
                    costs.append((cost, i, j))
        matched: dict[int, int] = {}
        taken: set[int] = set()
        for _, i, j in sorted(costs):
            if i not in matched and j not in taken:
                matched[i] = j
                taken.add(j)
        kept = []
        for i, track in enumerate(live):
            hit = matched.get(i)
            track.seen.append(hit)
            if hit is None:
                track.missed += 1
            else:
                track.filter.update(_state(dets[hit].box))
                track.hits, track.missed, track.last_hit = track.hits + 1, 0, len(track.seen)
            if track.id is None and track.hits >= settings.min_hits:
                track.id, next_id = next_id, next_id + 1
            if track.missed == 0 or (track.id is not None and track.missed <= settings.max_missed):
                kept.append(track)
            elif track.id is not None:
                done.append(track)
        for j, det in enumerate(dets):
            if j not in taken:
                new = _Live(_Filter(_state(det.box), settings.smoothing), det.label, t, [j])
                if settings.min_hits == 1:
                    new.id, next_id = next_id, next_id + 1
                kept.append(new)
        live = kept
    done += [track for track in live if track.id is not None]
    return sorted((track.finish() for track in done), key=lambda track: track.id)


def _nearest_seen(seen: tuple[int | None, ...]) -> list[tuple[int, int]]:
    """Per frame of a track, (position in the track, detection index) of the nearest frame where it was seen;
    the earlier one on a tie. A track starts and ends with a hit, so every frame has one on each side."""
    before: list[tuple[int, int]] = []
    for k, j in enumerate(seen):
        before.append((k, j) if j is not None else before[-1])
    after: list[tuple[int, int]] = []
    for k in range(len(seen) - 1, -1, -1):
        j = seen[k]
        after.append((k, j) if j is not None else after[-1])
    after.reverse()
    return [b if k - b[0] <= a[0] - k else a for k, (b, a) in enumerate(zip(before, after))]


def _affine(src: Box, dst: Box) -> Affine:
    """The scale and shift taking box `src` onto box `dst`."""
    sx = (dst[2] - dst[0]) / (src[2] - src[0]) if src[2] > src[0] else 1.0
    sy = (dst[3] - dst[1]) / (src[3] - src[1]) if src[3] > src[1] else 1.0
    return sx, sy, dst[0] - sx * src[0], dst[1] - sy * src[1]


def _moved(box: Box, a: Affine) -> Box:
    sx, sy, tx, ty = a
    return sx * box[0] + tx, sy * box[1] + ty, sx * box[2] + tx, sy * box[3] + ty


def tracked_detections(found: list[ImageDetections], tracks: list[Track]) -> list[ImageDetections]:
    """Per frame, one detection per track there, ordered by track id: the detection the track matched (the
    nearest one seen where it was predicted; score 0 there) moved to the smoothed box, `track` set. The shape
    is the mask's now (rebuilt at the smoothed box), so the detection is a box."""
    per_frame: list[list[Detection]] = [[] for _ in found]
    for track in tracks:
        for (frame, box), (near, j) in zip(zip(track.frames(), track.boxes), _nearest_seen(track.seen)):
            base = found[track.first + near].detections[j]
            a = _affine(base.box, box)
            per_frame[frame].append(
                replace(
                    base,
                    box=box,
                    score=base.score if frame == track.first + near else 0.0,
                    mask=None,
                    mask_box=None,
                    part_of=_moved(base.part_of, a) if base.part_of is not None else None,
                    track=track.id,
                )
            )
    return [replace(frame, detections=tuple(dets)) for frame, dets in zip(found, per_frame)]


def _drawn(box: Box) -> Box:
    """The box as its mask was drawn, on whole pixels (those whose centres it holds; see Detection.pixel_box,
    here not clipped to the frame): moving the mask from there, not from the exact box, keeps that rounding
    out of the moved mask."""
    return (
        float(math.floor(box[0] + 0.5)),
        float(math.floor(box[1] + 0.5)),
        float(math.floor(box[2] + 0.5)),
        float(math.floor(box[3] + 0.5)),
    )


def _paste(out: np.ndarray, values: np.ndarray, origin: tuple[int, int], a: Affine) -> tuple[int, int, int, int] | None:
    """`values` (a patch whose top-left pixel is `origin` in the frame) moved by `a` into `out`, combined with
    max; bilinear, pixel centres at i + 0.5 (a whole-pixel shift copies the values exactly). Returns the
    rectangle of `out` written (None when the patch lands outside the frame)."""
    import cv2  # comes with mediapipe and ultralytics

    sx, sy, tx, ty = a
    ox, oy = origin
    ph, pw = values.shape
    h, w = out.shape
    x0, x1 = max(math.floor(sx * ox + tx), 0), min(math.ceil(sx * (ox + pw) + tx), w)
    y0, y1 = max(math.floor(sy * oy + ty), 0), min(math.ceil(sy * (oy + ph) + ty), h)
    if x1 <= x0 or y1 <= y0:
        return None
    # for output pixel (i, j) of the window: the patch's point ((x0 + i + 0.5 - tx) / sx - ox - 0.5, ...)
    back = np.array(
        [[1 / sx, 0.0, (x0 + 0.5 - tx) / sx - ox - 0.5], [0.0, 1 / sy, (y0 + 0.5 - ty) / sy - oy - 0.5]],
        dtype=np.float64,
    )
    moved = cv2.warpAffine(
        values, back, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0
    )
    # interpolation leaves specks far below one 8-bit level at the edge: they would still blend (a pixel a
    # saved 8-bit mask shows as 0 would change), so they become 0, as a drawn mask's band never goes below.
    # OpenCV's threshold and max: one SIMD pass each, several times numpy's masked assignment
    cv2.threshold(moved, BELOW_FAINTEST, 0.0, cv2.THRESH_TOZERO, dst=moved)
    target = out[y0:y1, x0:x1]
    cv2.max(target, moved, dst=target)
    return x0, y0, x1, y1


def steady_masks(
    masks: torch.Tensor, found: list[ImageDetections], tracks: list[Track], progress: Progress | None = None
) -> torch.Tensor:
    """[B, H, W] masks holding each track's part of `masks`, moved from its detected box to its smoothed one
    (see the module's notes); a new tensor on the CPU, `masks` is not modified."""
    source = masks.detach().to("cpu", torch.float32).contiguous()
    todo: list[list[tuple[int, int, Box]]] = [[] for _ in found]  # per frame: (frame seen, detection, box)
    for track in tracks:
        for (frame, box), (near, j) in zip(zip(track.frames(), track.boxes), _nearest_seen(track.seen)):
            todo[frame].append((track.first + near, j, box))
    parts: dict[int, dict[int, Region]] = {}  # per frame seen: each detection's own pixels, fade band included

    def parts_of(g: int) -> dict[int, Region]:  # two workers may find the same frame's: the same result
        if g not in parts:
            parts[g] = {
                r.detection: r for r in find_regions(source[g], found[g], orphans=False) if r.detection is not None
            }
        return parts[g]

    out = tracked(buffers.zeros, tuple(source.shape), "cpu")

    def build(f: int) -> list[tuple[int, int, int, int]]:  # a frame's parts found and moved while in the cache
        written = []
        for g, j, box in todo[f]:
            region = parts_of(g).get(j)
            if region is None:  # the detection owned no pixel of the mask
                continue
            x0, y0, x1, y1 = region.box
            values = np.where(region.owned, source[g, y0:y1, x0:x1].numpy(), np.float32(0.0))
            rect = _paste(out[f].numpy(), values, (x0, y0), _affine(_drawn(found[g].detections[j].box), box))
            if rect is not None:
                written.append(rect)
        return written

    # what each frame's moved parts cover holds all of its new mask: Mask Margin Crop reads only there
    return remember_support(out, each(build, range(source.shape[0]), progress))


def track_video(
    masks: torch.Tensor,
    found: list[ImageDetections],
    settings: TrackSettings,
    progress: Progress | None = None,
) -> TrackResult:
    """Track Video: the tracks of a batch of frames, their detections and the masks at the smoothed boxes
    (on the masks' device). Inputs are not modified."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise InvalidParameter(f"mask must be [frames, height, width], got {shape}", parameter="mask")
    b, h, w = masks.shape
    if b < 2:
        raise InvalidParameter(
            f"tracking needs a video: a batch of at least 2 frames, got {b}; for single images connect Image "
            "Mask to Mask Margin Crop directly",
            parameter="mask",
        )
    if len(found) != b:
        raise InvalidParameter(
            f"{len(found)} detection sets for {b} masks: connect the detections made with this mask",
            parameter="detections",
        )
    if any((f.width, f.height) != (w, h) for f in found):
        raise InvalidParameter(
            "the detections were made on frames of another size than the mask", parameter="detections"
        )
    tracks = link(found, settings)
    rebuilt = steady_masks(masks, found, tracks, progress).to(masks.device)
    return TrackResult(rebuilt, tracked_detections(found, tracks), tracks)
