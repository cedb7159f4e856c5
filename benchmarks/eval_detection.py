"""Detection quality on an annotated photo folder (e.g. ../shared/eval/dev with its gt.json).

    python benchmarks/eval_detection.py PATH_TO_EVAL_DIR [--json OUT]

Measures, against the project's quality targets (benchmarks/README.md):
- mediapipe_face_full at confidence 0.25, max 20: recall / precision, TP/FP/FN per image and total
  (target recall >= 0.89 at precision >= 0.95);
- every mesh model: share of the faces found by mediapipe_face_full that the mesh mask covers
  (target >= 95%);
- eye models: share of annotated eye centres inside the mask (padding 0, blur 0; target >= 90%),
  plus a sanity check that per face the nose lies between the eyes and the lips;
- informative only: mediapipe_face_short on faces, extra_mediapipe_hands on hands.

Matching (gt.json "info"): a prediction matches a ground-truth box when the GT centre lies inside
the prediction or IoU >= 0.3; each box matches at most once (predictions by falling score).
Unmatched predictions whose centre lies in an ignore box of the same class are dropped, not counted
as false positives. The photos are read where they are; nothing is copied.

Exit status: 0 when the evaluation ran (targets met or not), 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")  # quiet mediapipe's C++ logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskmargin.detection import Detection, ImageDetections
from maskmargin.images import load_image_file
from maskmargin.loader import load_detector
from maskmargin.masks import build_mask
from maskmargin.registry import MODELS
from maskmargin.tiling import detect_with_tiles

CONFIDENCE = 0.25
MAX_DET = 20
IOU_MATCH = 0.3

FACE_MODEL = "mediapipe_face_full"
TILED = "+tiles"
MESH_MODELS = [m.name for m in MODELS if m.backend == "mediapipe_mesh"]
EYE_MODELS = ["mediapipe_face_mesh_eyes_only", "eyes_mesh_mediapipe", "eyes_lips_mesh", "nose_eyes_mesh"]
# per-feature models used for the eyes/nose/lips order check, and combos that must agree with them
FEATURE_MODELS = {"eyes": "eyes_mesh_mediapipe", "nose": "nose_mesh_mediapipe", "lips": "lips_mesh_mediapipe"}
COMBOS = {"eyes_lips_mesh": ("eyes", "lips"), "nose_eyes_mesh": ("nose", "eyes"), "nose_lips_mesh": ("nose", "lips")}

TARGETS = {
    "face_recall": 0.89,
    "face_precision": 0.95,
    "mesh_coverage": 0.95,
    "eye_centres": 0.90,
}

Box = tuple[float, float, float, float]


# ----------------------------------------------------------------------------- matching


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def inside(p: tuple[float, float], b: Box) -> bool:
    return b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]


def matches(pred: Box, gt: Box) -> bool:
    return inside(centre(gt), pred) or iou(pred, gt) >= IOU_MATCH


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    ignored: int = 0  # unmatched predictions dropped by an ignore box
    missed: list = field(default_factory=list)  # GT boxes not found
    false: list = field(default_factory=list)  # (box, score) of false positives

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.ignored += other.ignored

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")


def evaluate_boxes(preds: list[Detection], gts: list[Box], ignores: list[Box]) -> Counts:
    """Greedy lenient matching: predictions by falling score, each to the best unmatched GT."""
    c = Counts()
    free = list(range(len(gts)))
    for det in sorted(preds, key=lambda d: d.score, reverse=True):
        cands = [g for g in free if matches(det.box, gts[g])]
        if cands:
            best = max(cands, key=lambda g: (iou(det.box, gts[g]), inside(centre(gts[g]), det.box)))
            free.remove(best)
            c.tp += 1
        elif any(inside(centre(det.box), ig) for ig in ignores):
            c.ignored += 1
        else:
            c.fp += 1
            c.false.append(([round(v) for v in det.box], round(det.score, 3)))
    c.fn = len(free)
    c.missed = [list(gts[g]) for g in free]
    return c


# ----------------------------------------------------------------------------- data


@dataclass
class Photo:
    name: str
    rgb: np.ndarray
    gt: dict

    def boxes(self, cls: str) -> list[Box] | None:
        v = self.gt.get(cls)
        return None if v is None else [tuple(map(float, b)) for b in v]

    def ignores(self, cls: str) -> list[Box]:
        return [tuple(map(float, i["box"])) for i in self.gt.get("ignore", []) if i.get("class") == cls]


def load_photos(folder: Path) -> tuple[list[Photo], dict]:
    gt_path = folder / "gt.json"
    if not gt_path.is_file():
        raise FileNotFoundError(f"{gt_path} not found: pass the folder that holds gt.json and the photos")
    data = json.loads(gt_path.read_text())
    photos = []
    for entry in data["images"]:
        rgb = load_image_file(folder / entry["file"])
        h, w = rgb.shape[:2]
        if (w, h) != (entry.get("width", w), entry.get("height", h)):
            raise ValueError(f"{entry['file']}: image is {w}x{h} but gt.json says {entry['width']}x{entry['height']}")
        photos.append(Photo(entry["file"], rgb, entry))
    return photos, data.get("info", {})


# ----------------------------------------------------------------------------- helpers


def union_mask(dets: list[Detection], w: int, h: int) -> np.ndarray:
    """Union of the detections' shapes (padding 0, blur 0) as bool [h, w]."""
    out = np.zeros((h, w), dtype=bool)
    for d in dets:
        (x0, y0, x1, y1), local = d.region(w, h)
        out[y0:y1, x0:x1] |= local
    return out


def int_box(b: Box, w: int, h: int) -> tuple[int, int, int, int]:
    return (
        min(max(int(np.floor(b[0])), 0), w),
        min(max(int(np.floor(b[1])), 0), h),
        min(max(int(np.ceil(b[2])), 0), w),
        min(max(int(np.ceil(b[3])), 0), h),
    )


def detection_for_face(dets: list[Detection], face: Detection) -> Detection | None:
    """The mesh detection that belongs to `face`: same score (mesh runs on the same detector), centre inside."""
    fc = centre(face.box)
    cands = [d for d in dets if inside(centre(d.box), face.box)]
    if not cands:
        return None
    return min(cands, key=lambda d: (abs(d.score - face.score) > 1e-6, np.hypot(*np.subtract(centre(d.box), fc))))


def centroid(d: Detection, w: int, h: int) -> tuple[float, float] | None:
    (x0, y0, _, _), local = d.region(w, h)
    ys, xs = np.nonzero(local)
    if len(xs) == 0:
        return None
    return x0 + xs.mean() + 0.5, y0 + ys.mean() + 0.5


def fmt(v: float) -> str:
    return "  n/a" if v != v else f"{v:5.3f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ----------------------------------------------------------------------------- evaluations


def detect_all(model: str, photos: list[Photo], cache: dict) -> tuple[list[list[Detection]], float]:
    """Detections of `model` on every photo (cached), and the median ms per photo; a name ending in
    "+tiles" searches the tiles too (Image Mask's search_tiles)."""
    if model not in cache:
        name = model.removesuffix(TILED)
        det = load_detector(name)

        def detect(rgb: np.ndarray) -> list[Detection]:
            if model.endswith(TILED):
                return detect_with_tiles(det, rgb, CONFIDENCE, MAX_DET)
            return det.detect(rgb, CONFIDENCE, MAX_DET)

        detect(photos[0].rgb)  # warm-up (graph creation)
        out, times = [], []
        for p in photos:
            t = time.perf_counter()
            out.append(detect(p.rgb))
            times.append((time.perf_counter() - t) * 1000)
        cache[model] = (out, float(np.median(times)))
    return cache[model]


def box_eval(model: str, cls: str, photos: list[Photo], cache: dict, show: bool) -> dict:
    preds, ms = detect_all(model, photos, cache)
    total = Counts()
    rows = []
    for p, dets in zip(photos, preds):
        gts = p.boxes(cls)
        if gts is None:
            continue
        c = evaluate_boxes(dets, gts, p.ignores(cls))
        total.add(c)
        rows.append(
            {
                "image": p.name,
                "gt": len(gts),
                "pred": len(dets),
                "tp": c.tp,
                "fp": c.fp,
                "fn": c.fn,
                "ignored": c.ignored,
                "missed": c.missed,
                "false_positives": c.false,
            }
        )
    if show:
        print(f"\n{model} vs GT {cls} (confidence {CONFIDENCE}, max {MAX_DET}, median {ms:.1f} ms/photo)")
        print(f"  {'image':<28} {'GT':>3} {'pred':>4} {'TP':>3} {'FP':>3} {'FN':>3} {'ign':>3}  notes")
        for r in rows:
            notes = []
            if r["missed"]:
                notes.append("missed " + " ".join(str(b) for b in r["missed"]))
            if r["false_positives"]:
                notes.append("FP " + " ".join(f"{b}@{s}" for b, s in r["false_positives"]))
            print(
                f"  {r['image']:<28} {r['gt']:>3} {r['pred']:>4} {r['tp']:>3} {r['fp']:>3} {r['fn']:>3} "
                f"{r['ignored']:>3}  {'; '.join(notes)}"
            )
        print(
            f"  {'TOTAL':<28} {total.tp + total.fn:>3} {'':>4} {total.tp:>3} {total.fp:>3} {total.fn:>3} "
            f"{total.ignored:>3}  recall {fmt(total.recall)}  precision {fmt(total.precision)}"
        )
    return {
        "model": model,
        "class": cls,
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
        "ignored": total.ignored,
        "recall": total.recall,
        "precision": total.precision,
        "median_ms": ms,
        "per_image": rows,
    }


def at_confidence(model: str, cls: str, photos: list[Photo], cache: dict, confidence: float) -> dict:
    """Recall/precision of the cached predictions kept at a higher confidence (informative: mediapipe
    0.10.21 cut at 0.6 for full range whatever confidence said; ours keeps what scores at least it)."""
    preds, _ = detect_all(model, photos, cache)
    total = Counts()
    for p, dets in zip(photos, preds):
        gts = p.boxes(cls)
        if gts is not None:
            total.add(evaluate_boxes([d for d in dets if d.score >= confidence], gts, p.ignores(cls)))
    print(
        f"\n{model} vs GT {cls} at confidence {confidence}: TP {total.tp} FP {total.fp} FN {total.fn}  "
        f"recall {fmt(total.recall)}  precision {fmt(total.precision)}"
    )
    return {
        "confidence": confidence,
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
        "recall": total.recall,
        "precision": total.precision,
    }


def mesh_coverage(photos: list[Photo], cache: dict) -> dict:
    faces, _ = detect_all(FACE_MODEL, photos, cache)
    n_faces = sum(len(f) for f in faces)
    print(f"\nMesh coverage of the {n_faces} faces found by {FACE_MODEL} (mask pixels inside the face box)")
    print(f"  {'model':<32} {'covered':>9} {'share':>6} {'estimated':>9} {'ms':>6}  uncovered")
    out = {}
    for model in MESH_MODELS:
        preds, ms = detect_all(model, photos, cache)
        covered, estimated, lost = 0, 0, []
        for p, fdets, mdets in zip(photos, faces, preds):
            h, w = p.rgb.shape[:2]
            m = union_mask(mdets, w, h)
            estimated += sum("estimated" in d.label for d in mdets)
            for f in fdets:
                x0, y0, x1, y1 = f.pixel_box(w, h)
                if m[y0:y1, x0:x1].any():
                    covered += 1
                else:
                    lost.append(f"{p.name}:{[x0, y0, x1, y1]}")
        share = covered / n_faces if n_faces else float("nan")
        out[model] = {
            "faces": n_faces,
            "covered": covered,
            "share": share,
            "keypoint_estimates": estimated,
            "median_ms": ms,
            "uncovered": lost,
        }
        print(f"  {model:<32} {covered:>4}/{n_faces:<4} {fmt(share)} {estimated:>9} {ms:>6.1f}  {' '.join(lost)}")
    print("  (estimated = faces where the mesh failed and the shape came from BlazeFace keypoints)")
    return out


def eye_centres(photos: list[Photo], cache: dict, models: list[str] = EYE_MODELS) -> dict:
    """Eye centres inside the padding-0 mask (the target), plus informative looser views."""
    faces, _ = detect_all(FACE_MODEL, photos, cache)
    n_eyes = sum(len(p.boxes("eyes") or []) for p in photos)
    print(f"\nAnnotated eye centres inside the mask (padding 0, blur 0), {n_eyes} eyes")
    print(
        "  (of found faces: only eyes whose centre lies in a face that mediapipe_face_full found; "
        "pad 4: the API's default padding; box: the mask touches the eye box;\n"
        "   IoU: mean over eyes of found faces of mask vs eye box, both cut to the box grown by half its size)"
    )
    print(
        f"  {'model':<32} {'inside':>9} {'share':>6} {'found faces':>11} {'pad 4':>6} {'box':>6} {'IoU':>6}  "
        "missed (image:centre)"
    )
    out = {}
    for model in models:
        preds, _ = detect_all(model, photos, cache)
        hit = hit_found = n_found = hit_pad = touch = 0
        missed, ious = [], []
        for p, dets, fdets in zip(photos, preds, faces):
            h, w = p.rgb.shape[:2]
            m = union_mask(dets, w, h)
            padded = build_mask(ImageDetections(w, h, tuple(dets)), 4, 0).numpy() > 0.5
            for b in p.boxes("eyes") or []:
                cx, cy = centre(b)
                xi, yi = min(int(cx), w - 1), min(int(cy), h - 1)
                in_found = any(inside((cx, cy), f.box) for f in fdets)
                n_found += in_found
                x0, y0, x1, y1 = int_box(b, w, h)
                touch += bool(m[y0:y1, x0:x1].any())
                if in_found:
                    ious.append(box_iou_near(m, (x0, y0, x1, y1)))
                hit_pad += bool(padded[yi, xi])
                if m[yi, xi]:
                    hit += 1
                    hit_found += in_found
                else:
                    missed.append(f"{p.name}:({cx:.0f},{cy:.0f}){'' if in_found else '[face not found]'}")
        share = hit / n_eyes if n_eyes else float("nan")
        share_found = hit_found / n_found if n_found else float("nan")
        out[model] = {
            "eyes": n_eyes,
            "inside": hit,
            "share": share,
            "eyes_in_found_faces": n_found,
            "share_of_found_faces": share_found,
            "share_padding4": hit_pad / max(n_eyes, 1),
            "share_touching_box": touch / max(n_eyes, 1),
            "mean_box_iou": float(np.mean(ious)),
            "missed": missed,
        }
        print(
            f"  {model:<32} {hit:>4}/{n_eyes:<4} {fmt(share)} {fmt(share_found):>11} "
            f"{fmt(hit_pad / max(n_eyes, 1))} {fmt(touch / max(n_eyes, 1))} {fmt(float(np.mean(ious)))}  "
            f"{' '.join(missed)}"
        )
    return out


def box_iou_near(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """IoU of a boolean mask with a box, counting only pixels within the box grown by half its size
    (so that the other eye or a band between the eyes does not count against this one)."""
    x0, y0, x1, y1 = box
    gx, gy = (x1 - x0) // 2, (y1 - y0) // 2
    wx0, wy0 = max(0, x0 - gx), max(0, y0 - gy)
    window = mask[wy0 : y1 + gy, wx0 : x1 + gx]
    in_box = np.zeros_like(window)
    in_box[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = True
    union = (window | in_box).sum()
    return float((window & in_box).sum() / union) if union else 0.0


def feature_order(photos: list[Photo], cache: dict) -> dict:
    """Per face found: eyes above nose above lips (centroids, image y), and combos = union of their parts."""
    faces, _ = detect_all(FACE_MODEL, photos, cache)
    feats = {k: detect_all(m, photos, cache)[0] for k, m in FEATURE_MODELS.items()}
    combos = {c: detect_all(c, photos, cache)[0] for c in COMBOS}
    checked, ok_order, bad = 0, 0, []
    combo_iou: dict[str, list[float]] = {c: [] for c in COMBOS}
    for i, p in enumerate(photos):
        h, w = p.rgb.shape[:2]
        for f in faces[i]:
            parts = {k: detection_for_face(feats[k][i], f) for k in feats}
            if any(v is None for v in parts.values()):
                bad.append(f"{p.name}:{[round(v) for v in f.box]} (feature missing)")
                continue
            cents = {k: centroid(v, w, h) for k, v in parts.items()}
            if any(v is None for v in cents.values()):
                bad.append(f"{p.name}:{[round(v) for v in f.box]} (empty feature)")
                continue
            checked += 1
            if cents["eyes"][1] < cents["nose"][1] < cents["lips"][1]:
                ok_order += 1
            else:
                ys = {k: round(v[1]) for k, v in cents.items()}
                bad.append(f"{p.name}:{[round(v) for v in f.box]} y={ys}")
            for c, names in COMBOS.items():
                d = detection_for_face(combos[c][i], f)
                want = union_mask([parts[n] for n in names], w, h)
                got = union_mask([d] if d else [], w, h)
                union = (want | got).sum()
                combo_iou[c].append(float((want & got).sum() / union) if union else 1.0)
    n = sum(len(f) for f in faces)
    print(f"\nFeature sanity per face ({n} faces): eyes centroid above nose above lips (image y)")
    print(f"  order correct: {ok_order}/{checked}" + (f"   problems: {'; '.join(bad)}" if bad else ""))
    print("  combo masks vs union of the single-feature masks (IoU per face, min / mean):")
    for c, vals in combo_iou.items():
        if vals:
            print(f"    {c:<18} {min(vals):.3f} / {float(np.mean(vals)):.3f}")
    return {
        "faces": n,
        "checked": checked,
        "order_ok": ok_order,
        "problems": bad,
        "combo_iou_min": {c: (min(v) if v else None) for c, v in combo_iou.items()},
    }


# ----------------------------------------------------------------------------- main


def _no_nan(value):
    """JSON-safe copy: NaN (no boxes to divide by) becomes null, numpy numbers plain numbers."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if value != value else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dir", type=Path, help="folder with gt.json and the photos it names")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    photos, info = load_photos(args.eval_dir)
    print(f"{len(photos)} photos from {args.eval_dir}; box format: {info.get('box_format', '?')}")
    print(
        f"matching: GT centre inside prediction or IoU >= {IOU_MATCH}; unmatched predictions centred in a "
        f"same-class ignore box are dropped"
    )
    cache: dict = {}

    results: dict = {"confidence": CONFIDENCE, "max_detections": MAX_DET, "targets": TARGETS}
    results["faces_full"] = box_eval(FACE_MODEL, "faces", photos, cache, show=True)
    results["mesh_coverage"] = mesh_coverage(photos, cache)
    results["eye_centres"] = eye_centres(photos, cache)
    results["feature_sanity"] = feature_order(photos, cache)
    print("\n-- informative (no target) --")
    results["faces_full_higher"] = [at_confidence(FACE_MODEL, "faces", photos, cache, c) for c in (0.5, 0.6)]
    results["faces_short"] = box_eval("mediapipe_face_short", "faces", photos, cache, show=True)
    results["hands"] = box_eval("extra_mediapipe_hands", "hands", photos, cache, show=True)
    results["faces_full_tiles"] = box_eval(FACE_MODEL + TILED, "faces", photos, cache, show=True)
    results["eye_centres_tiles"] = eye_centres(photos, cache, ["eyes_mesh_mediapipe" + TILED])

    ff = results["faces_full"]
    checks = [
        (f"{FACE_MODEL} recall >= {TARGETS['face_recall']}", ff["recall"], ff["recall"] >= TARGETS["face_recall"]),
        (
            f"{FACE_MODEL} precision >= {TARGETS['face_precision']}",
            ff["precision"],
            ff["precision"] >= TARGETS["face_precision"],
        ),
    ]
    for model, r in results["mesh_coverage"].items():
        checks.append(
            (
                f"{model} covers >= {TARGETS['mesh_coverage']:.0%} of faces",
                r["share"],
                r["share"] >= TARGETS["mesh_coverage"],
            )
        )
    for model, r in results["eye_centres"].items():
        checks.append(
            (f"{model} eye centres >= {TARGETS['eye_centres']:.0%}", r["share"], r["share"] >= TARGETS["eye_centres"])
        )
    fs = results["feature_sanity"]
    checks.append(
        (
            "eyes above nose above lips on every face",
            fs["order_ok"] / max(fs["checked"], 1),
            fs["order_ok"] == fs["checked"] == fs["faces"],
        )
    )
    results["checks"] = [{"check": n, "value": v, "pass": bool(ok)} for n, v, ok in checks]

    print("\n== targets ==")
    for name, value, ok in checks:
        print(f"  {verdict(ok)}  {name:<58} {fmt(value)}")
    passed = sum(ok for *_, ok in checks)
    tiles = results["faces_full_tiles"]
    print(
        f"  {passed}/{len(checks)} targets met; informative: face_short recall {fmt(results['faces_short']['recall'])} "
        f"precision {fmt(results['faces_short']['precision'])}, hands recall {fmt(results['hands']['recall'])} "
        f"precision {fmt(results['hands']['precision'])}; face_full with tiles recall {fmt(tiles['recall'])} "
        f"precision {fmt(tiles['precision'])}"
    )
    print(f"  ({time.perf_counter() - t0:.1f} s)")

    if args.json:
        args.json.write_text(json.dumps(_no_nan(results), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # an error, unlike a missed target, fails the run
        import traceback

        traceback.print_exc()
        print(f"eval_detection: error: {exc}", file=sys.stderr)
        sys.exit(1)
