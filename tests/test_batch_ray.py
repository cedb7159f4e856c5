"""`batch --ray` on a real local Ray cluster (2 CPUs, one per module): the same outputs as `batch` without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_inputs import CORRUPT, CORRUPT_ERROR, GOOD, image_folder

from maskmargin.cli.batch import DETECTIONS_FILE, mask_name, run_batch
from maskmargin.settings import MaskSettings

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
MODEL = "mediapipe_face_full"
SETTINGS = MaskSettings(confidence=0.3, mask_padding=6, mask_blur=3)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def by_path(output: Path) -> dict[str, dict]:
    return {e["path"]: e for e in map(json.loads, (output / DETECTIONS_FILE).read_text().splitlines())}


def test_ray_gives_what_the_local_pool_gives_and_resumes(tmp_path):
    folder = image_folder(tmp_path / "in")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert run_batch(str(folder), local, MODEL, SETTINGS, progress=False) == (5, 0, 1)
    # half the images done before (as a killed run leaves them): Ray does only the rest
    first = [line for line in (local / DETECTIONS_FILE).read_text().splitlines() if '"astronaut.png"' in line]
    on_ray.mkdir()
    (on_ray / DETECTIONS_FILE).write_text(first[0] + "\n")
    (on_ray / "astronaut.png").write_bytes((local / "astronaut.png").read_bytes())
    done = run_batch(str(folder), on_ray, MODEL, SETTINGS, use_ray=True, workers=2, batch_size=2, progress=False)
    assert done == (4, 1, 1)
    ours, theirs = by_path(on_ray), by_path(local)
    assert ours[CORRUPT]["error"].startswith(CORRUPT_ERROR)
    assert sorted(ours) == sorted(theirs)
    for name in GOOD:
        assert ours[name] == theirs[name]
        assert (on_ray / mask_name(name)).read_bytes() == (local / mask_name(name)).read_bytes()
