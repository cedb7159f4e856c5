"""Image Mask's worker threads, and the batched MediaPipe models (run in torch) beside them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from photos import ASTRONAUT

import maskmargin.workers as workers
from maskmargin.backends import mediapipe_faces
from maskmargin.images import to_uint8_rgb
from maskmargin.loader import load_detector
from maskmargin.pipeline import image_mask
from maskmargin.settings import MaskSettings
from maskmargin.tflite import litert


def batch(n: int) -> torch.Tensor:
    """n different images: the astronaut shifted and mirrored, so every image has its own face box."""
    frames = []
    for i in range(n):
        im = np.roll(ASTRONAUT, 12 * i, axis=1)
        frames.append(im[:, ::-1] if i % 2 else im)
    return torch.from_numpy(np.stack(frames)).float() / 255


@pytest.mark.parametrize("model", ["mediapipe_face_full", "eyes_mesh_mediapipe"])
def test_workers_give_what_one_thread_gives(monkeypatch, model):
    det = load_detector(model)
    images = batch(6)
    monkeypatch.setattr(workers, "worker_count", lambda: 1)
    one = image_mask(det, images, MaskSettings(0.25, 6, 4, 4), thumbnail_side=128)
    monkeypatch.setattr(workers, "worker_count", lambda: 4)
    four = image_mask(det, images, MaskSettings(0.25, 6, 4, 4), thumbnail_side=128)
    assert torch.equal(one.masks, four.masks) and torch.equal(one.thumbnails, four.thumbnails)
    assert one.to_api() == four.to_api()
    for i, found in enumerate(four.detections):  # each image's own detections, in image order
        alone = det.detect(to_uint8_rgb(images[i : i + 1])[0], 0.25, 6)
        # one image alone runs a batch of one: float sums in another order, so boxes agree to 1e-3 px
        assert alone and len(found.detections) == len(alone)
        for d, a in zip(found.detections, alone):
            assert d.box == pytest.approx(a.box, abs=1e-3)


@pytest.mark.parametrize("runtime", ["torch", "litert"])
def test_progress_counts_up_to_the_batch_and_a_raise_stops_it(monkeypatch, runtime):
    """torch runs the batch in forwards of CHUNK images, progress after each image; LiteRT hands images to
    the calling thread and a worker as they come free, progress counting the images done whenever the
    calling thread finishes one (a count may be skipped when the worker finished one meanwhile)."""
    monkeypatch.setenv(litert.RUNTIME_VARIABLE, runtime)
    det = load_detector("mediapipe_face_full")
    assert det.runs_batched() == (runtime == "torch")
    monkeypatch.setattr(workers, "worker_count", lambda: 2)
    seen = []
    image_mask(det, batch(5), MaskSettings(), progress=lambda done, total: seen.append((done, total)))
    if runtime == "torch":
        assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    else:
        counts = [done for done, _ in seen]
        assert {t for _, t in seen} == {5} and counts == sorted(counts) and counts[-1] == 5 and counts[0] >= 1

    calls = []
    real = det.run
    monkeypatch.setattr(mediapipe_faces, "CHUNK", 2)  # one forward per two images
    monkeypatch.setattr(det, "run", lambda images, conf: calls.append(len(images)) or real(images, conf))

    class Stopped(Exception):
        pass

    def stop_at_two(done: int, total: int) -> None:
        if done >= 2:
            raise Stopped

    with pytest.raises(Stopped):
        image_mask(det, batch(12), MaskSettings(), progress=stop_at_two)
    if runtime == "torch":
        assert calls == [2], "images not yet started when the run stopped never start"
    else:
        # the progress that raises comes when two or more images are done; the worker finishes the one it
        # has under way and takes no other: the last images never start
        assert calls and set(calls) == {1} and 2 <= len(calls) <= 6, calls


def test_face_and_mesh_models_share_their_graphs():
    """mediapipe_face_full and the eight mesh models run the same two torch modules, loaded once."""
    face = load_detector("mediapipe_face_full")
    eyes, lips = load_detector("eyes_mesh_mediapipe"), load_detector("lips_mesh_mediapipe")
    assert eyes.mesh.model is lips.mesh.model
    assert eyes.faces.graph.model is lips.faces.graph.model is face.graph.model
    assert load_detector("mediapipe_face_short").graph.model is not face.graph.model, "short range is another model"
    images = batch(2)
    found = image_mask(lips, images, MaskSettings()).detections
    assert all(f.detections and f.detections[0].label == "lips" for f in found)


def test_in_order_keeps_order_bounds_the_work_under_way_and_stops_early(monkeypatch):
    monkeypatch.setattr(workers, "worker_count", lambda: 3)
    started, running, most = [], [0], [0]
    lock = threading.Lock()

    def slow_square(i: int) -> int:
        with lock:
            started.append(i)
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.002 * (i % 3))  # later items may finish first
        with lock:
            running[0] -= 1
        return i * i

    with workers.in_order(slow_square, range(20)) as results:
        assert list(results) == [i * i for i in range(20)]
    assert most[0] <= 3

    started.clear()
    with pytest.raises(KeyError):
        with workers.in_order(slow_square, range(40)) as results:
            for value in results:
                if value == 4:
                    raise KeyError("stop")  # the caller stops (an interrupted run)
    assert len(started) <= 3 + 6, "no more than the items already handed out ever start"


def test_in_order_runs_the_workers_in_the_callers_inference_mode():
    def mode(_: int) -> tuple[bool, bool]:
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    with torch.inference_mode():
        with workers.in_order(mode, range(4)) as results:
            assert set(results) == {(True, False)}
    with workers.in_order(mode, range(4)) as results:
        assert set(results) == {(False, True)}


def test_in_order_passes_a_workers_error_on():
    def fail_on_two(i: int) -> int:
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        with workers.in_order(fail_on_two, range(8)) as results:
            list(results)


def test_each_gives_results_in_order_reports_progress_and_stops_on_a_raise(monkeypatch):
    monkeypatch.setattr(workers, "worker_count", lambda: 3)
    names: set[str] = set()

    def square(x: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.002)  # long enough for every thread to take a turn
        return x * x

    seen: list[tuple[int, int]] = []
    assert workers.each(square, list(range(40)), lambda d, t: seen.append((d, t))) == [x * x for x in range(40)]
    assert seen[-1] == (40, 40) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert threading.current_thread().name in names  # the calling thread works too

    started: list[int] = []

    def fail_at_three(x: int) -> int:
        started.append(x)
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(ValueError, match="three"):
        workers.each(fail_at_three, list(range(200)))
    assert len(started) < 200, "no item starts after the raise"

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    started.clear()
    with pytest.raises(KeyboardInterrupt):
        workers.each(lambda x: (started.append(x), time.sleep(0.002)), list(range(200)), stop)
    assert len(started) < 200
    monkeypatch.setattr(workers, "worker_count", lambda: 1)
    assert workers.each(square, [1, 2, 3]) == [1, 4, 9]
