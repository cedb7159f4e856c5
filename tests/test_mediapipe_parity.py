"""Our torch execution of MediaPipe's .tflite graphs against mediapipe 0.10.21 itself.

The reference outputs (tests/fixtures/mediapipe_reference.json) were made once by
tools/make_mediapipe_fixtures.py with mp.solutions in a side venv; mediapipe is not installed here.
At the graphs' own thresholds (0.5 short range, 0.6 full range) boxes, keypoints and the 478 mesh
landmarks must agree within 0.05 px, through LiteRT and through the torch module alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mediapipe_images import parity_images

from maskmargin.backends import mediapipe_graphs as graphs
from maskmargin.backends.mediapipe_ops import images_to_tensors
from maskmargin.loader import load_detector
from maskmargin.tflite import litert

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "mediapipe_reference.json").read_text())
IMAGES = parity_images()
TOLERANCE_PX = 0.05


@pytest.fixture(autouse=True, params=["litert", "torch"])
def runtime(request, monkeypatch):
    """Every parity check on both CPU runtimes of the same graphs (LiteRT, and the torch module)."""
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, request.param)
    return request.param


def test_the_fixture_images_are_the_ones_the_reference_saw():
    assert REFERENCE["mediapipe"] == "0.10.21"
    for name, image in IMAGES.items():
        assert list(image.shape) == REFERENCE["images"][name]["shape"]


def _match(reference: list[dict], found: graphs.Detections) -> list[tuple[dict, int]]:
    assert len(found.scores) == len(reference)
    pairs = []
    for ref in reference:
        j = int(np.argmin([np.abs(np.array(ref["box"]) - b).sum() for b in found.boxes]))
        pairs.append((ref, j))
    return pairs


@pytest.mark.parametrize("model,key", [("mediapipe_face_short", "face_short"), ("mediapipe_face_full", "face_full")])
@pytest.mark.parametrize("name", list(IMAGES))
def test_face_detection_matches_mediapipe(model, key, name):
    det = load_detector(model)
    found = det.graph.run(images_to_tensors([IMAGES[name]], det.device), det.config.graph_threshold)[0]
    for ref, j in _match(REFERENCE["images"][name][key], found):
        assert np.abs(np.array(ref["box"]) - found.boxes[j]).max() < TOLERANCE_PX
        assert np.abs(np.array(ref["keypoints"]) - found.keypoints[j]).max() < TOLERANCE_PX
        assert abs(ref["score"] - found.scores[j]) < 1e-4


@pytest.mark.parametrize("name", [n for n in IMAGES if REFERENCE["images"][n]["mesh"]])
def test_478_mesh_landmarks_match_mediapipe(name):
    """FaceMesh's own pipeline (short-range detection, then the attention mesh on its crop)."""
    mesh = load_detector("eyes_mesh_mediapipe").mesh
    short = load_detector("mediapipe_face_short")
    tensors = images_to_tensors([IMAGES[name]], mesh.device)
    face = short.graph.run(tensors, 0.5)[0]
    best = int(np.argmax(face.scores))
    roi = torch.tensor([graphs.face_roi(face.boxes[best], face.keypoints[best])], dtype=torch.float64)
    points, presence = mesh.run(tensors, roi, [0])
    reference = np.array(REFERENCE["images"][name]["mesh"][0])
    assert points.shape == (1, 478, 2) and presence[0] > 0.5
    assert np.abs(points[0] - reference).max() < TOLERANCE_PX


@pytest.mark.parametrize("name", ["astronaut", "group"])
def test_selfie_segmentation_matches_mediapipe(name):
    ref = REFERENCE["images"][name]["selfie"]
    prob = load_detector("extra_mediapipe_person_selfie").probabilities([IMAGES[name]])[0].cpu().numpy()
    assert np.abs(prob[np.ix_(ref["ys"], ref["xs"])] - np.array(ref["grid"])).max() < 0.01
    assert abs(float(prob.mean()) - ref["mean"]) < 0.002


def test_confidence_means_what_the_api_says_for_every_face_model():
    """mp.solutions cut at 0.6 (full range) whatever min_detection_confidence said; ours keeps what scores at
    least `confidence`: the turned face (0.37) that mediapipe's full range dropped is found at 0.25."""
    full = load_detector("mediapipe_face_full")
    assert REFERENCE["images"]["turned"]["face_full"] == []
    turned = full.detect_all(IMAGES["turned"], 0.25)
    assert len(turned) == 1 and 0.25 <= turned[0].score < 0.6
    assert full.detect_all(IMAGES["turned"], 0.6) == []
    for model in ("mediapipe_face_full", "mediapipe_face_short", "eyes_mesh_mediapipe"):
        det = load_detector(model)
        for confidence in (0.05, 0.3, 0.7):
            for image in IMAGES.values():
                assert all(d.score >= confidence for d in det.detect_all(image, confidence))


@pytest.mark.parametrize("model", ["mediapipe_face_full", "lips_mesh_mediapipe", "extra_mediapipe_person_selfie"])
def test_one_batched_forward_gives_what_each_image_gives_alone(model):
    det = load_detector(model)
    images = list(IMAGES.values())
    together = det.detect_batch(images, 0.25, 20)
    for image, found in zip(images, together, strict=True):
        alone = det.detect(image, 0.25, 20)
        assert [d.label for d in found] == [d.label for d in alone]
        assert np.allclose([d.box for d in found], [d.box for d in alone], atol=1e-3) or not alone
