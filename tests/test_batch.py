"""`python -m maskmargin batch` without Ray: masks and detections as `run` gives them, resume, a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_inputs import CORRUPT, CORRUPT_ERROR, GOOD, image_folder
from PIL import Image

from maskmargin.batch import MaskMarginMasker
from maskmargin.cli import main
from maskmargin.cli.batch import DETECTIONS_FILE, mask_name
from maskmargin.settings import MaskSettings

MODEL = "mediapipe_face_full"
KNOBS = ["--mask-padding", "6", "--mask-blur", "3", "--confidence", "0.3"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return image_folder(tmp_path_factory.mktemp("batch-in"))


def lines(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / DETECTIONS_FILE).read_text().splitlines()]


def by_path(output: Path) -> dict[str, dict]:
    return {entry["path"]: entry for entry in lines(output)}


def run_answers(folder: Path, out: Path, capsys) -> dict[str, dict]:
    """What `run` answers for each good image with the same settings, masks as PNG files."""
    tasks = [
        {
            "taskType": "imageMasking",
            "taskUUID": f"00000000-0000-4000-8000-{i:012d}",
            "inputImage": str(folder / name),
            "model": MODEL,
            "maskPadding": 6,
            "maskBlur": 3,
            "confidence": 0.3,
            "outputFormat": "PNG",
        }
        for i, name in enumerate(GOOD)
    ]
    (out / "tasks.json").write_text(json.dumps(tasks))
    capsys.readouterr()
    assert main(["run", str(out / "tasks.json"), "--output-dir", str(out / "masks")]) == 0
    answers = json.loads(capsys.readouterr().out)["data"]
    return {name: answer for name, answer in zip(GOOD, answers)}


def test_batch_writes_the_masks_and_detections_run_gives(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(folder), str(out), "--model", MODEL, "--no-progress", *KNOBS]) == 1  # one error
    found = by_path(out)
    assert sorted(found) == sorted([*GOOD, CORRUPT])
    assert found[CORRUPT]["error"].startswith(CORRUPT_ERROR)
    assert not (out / mask_name(CORRUPT)).exists()
    expected = run_answers(folder, tmp_path, capsys)
    for name in GOOD:
        entry = found[name]
        assert entry["detections"] == expected[name]["detections"]
        assert entry["settings"] == {
            "confidence": 0.3,
            "maxDetections": 6,
            "maskPadding": 6,
            "maskBlur": 3,
            "tiles": False,
        }
        assert entry["model"] == MODEL
        run_mask = Path.from_uri(expected[name]["maskImageURL"]) if hasattr(Path, "from_uri") else None
        if run_mask is None:
            from urllib.parse import unquote, urlparse

            run_mask = Path(unquote(urlparse(expected[name]["maskImageURL"]).path))
        assert (out / mask_name(name)).read_bytes() == run_mask.read_bytes()
    # the astronaut's face: one box where it is; its mask is on inside the box, off far outside
    (box,) = found["astronaut.png"]["detections"]
    assert (
        165 <= box["x_min"] <= 185
        and 265 <= box["x_max"] <= 290
        and (found["astronaut.png"]["width"], found["astronaut.png"]["height"]) == (512, 512)
    )
    mask = np.asarray(Image.open(out / "astronaut.png"))
    assert mask.shape == (512, 512) and mask[120, 225] == 255 and mask[400, 50] == 0
    assert found["blank.webp"]["detections"] == [] and not np.asarray(Image.open(out / "blank.png")).any()
    assert (out / "nested" / "astronaut.png").is_file()


def test_a_second_run_skips_what_is_done_and_new_settings_redo_it(folder, tmp_path, capsys):
    out = tmp_path / "out"
    main(["batch", str(folder), str(out), "--model", MODEL, "--no-progress"])
    capsys.readouterr()
    main(["batch", str(folder), str(out), "--model", MODEL, "--no-progress"])
    assert "1 images run, 4 already done, 1 errors" in capsys.readouterr().err  # the corrupt file is retried
    main(["batch", str(folder), str(out), "--model", MODEL, "--no-progress", "--mask-blur", "0"])
    assert "5 images run, 0 already done, 1 errors" in capsys.readouterr().err


def test_a_killed_run_resumes_without_redoing_finished_images(folder, tmp_path, capsys):
    many = tmp_path / "many"
    many.mkdir()
    photo = (folder / "astronaut.png").read_bytes()
    for i in range(40):
        (many / f"img{i:03d}.png").write_bytes(photo)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "maskmargin", "batch", str(many), str(out), "--model", MODEL]
    proc = subprocess.Popen([*cmd, "--workers", "1", "--batch-size", "1", "--no-progress"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        path = out / DETECTIONS_FILE
        if path.exists() and path.read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {entry["path"] for entry in lines(out)}
    assert 5 <= len(before) < 40, "the run was to be killed mid-way"
    stamps = {name: (out / name).stat().st_mtime_ns for name in before}
    capsys.readouterr()
    assert main(["batch", str(many), str(out), "--model", MODEL, "--no-progress"]) == 0
    assert f"{40 - len(before)} images run, {len(before)} already done, 0 errors" in capsys.readouterr().err
    paths = [entry["path"] for entry in lines(out)]
    assert sorted(paths) == sorted(f"img{i:03d}.png" for i in range(40))  # each image once: none redone
    assert {name: (out / name).stat().st_mtime_ns for name in before} == stamps
    assert not list(out.rglob("*.partial"))


def test_the_masker_takes_decoded_images_as_ray_read_images_gives_them(folder):
    masker = MaskMarginMasker(MODEL, mask_padding=6, mask_blur=3)
    rgba = np.dstack([np.asarray(Image.open(folder / "astronaut.png")), np.full((512, 512), 7, np.uint8)])
    paths = np.array(["astronaut.png", "bad"], dtype=object)
    from_bytes = masker(
        {"path": paths, "bytes": np.array([(folder / "astronaut.png").read_bytes(), b"junk"], dtype=object)}
    )
    images = np.empty(2, dtype=object)
    images[:] = [rgba, np.zeros((4, 4, 2), np.uint8)]
    from_images = masker({"path": paths, "image": images})
    assert (
        from_bytes["mask"][0] == from_images["mask"][0] and from_bytes["detections"][0] == from_images["detections"][0]
    )
    assert from_bytes["error"][1] == "inputImage is not a PNG, JPG or WEBP image"
    assert from_images["error"][1] == "image must be [H, W], [H, W, 3] or [H, W, 4], got shape (4, 4, 2)"
    assert from_bytes["mask"][1] == b"" and list(from_bytes["width"]) == [512, 0]
    assert masker.settings == MaskSettings(0.25, 6, 6, 3)
    assert rgba[0, 0, 3] == 7  # the input was not modified


def test_an_input_without_images_is_a_usage_error(tmp_path, capsys):
    assert main(["batch", str(tmp_path), str(tmp_path / "out"), "--model", MODEL]) == 2
    assert f"error: INPUT {tmp_path} names no images" in capsys.readouterr().err


def test_a_video_gives_a_mask_per_frame_and_resumes(tmp_path, capsys):
    import cv2
    from photos import ASTRONAUT

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for shift in range(0, 60, 10):  # the face moves right 10 px a frame
        writer.write(cv2.cvtColor(np.ascontiguousarray(np.roll(ASTRONAUT, shift, axis=1)), cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    assert main(["batch", str(video), str(out), "--model", MODEL, "--no-progress", "--batch-size", "2"]) == 0
    found = by_path(out)
    assert sorted(found) == [f"clip/{i:06d}.png" for i in range(6)]
    lefts = [found[f"clip/{i:06d}.png"]["detections"][0]["x_min"] for i in range(6)]
    assert all(abs(left - (lefts[0] + 10 * i)) <= 3 for i, left in enumerate(lefts))
    assert np.asarray(Image.open(out / "clip" / "000003.png")).shape == (512, 512)
    capsys.readouterr()
    assert main(["batch", str(video), str(out), "--model", MODEL, "--no-progress"]) == 0
    assert "0 images run, 6 already done, 0 errors" in capsys.readouterr().err


def test_without_ray_installed_ray_is_never_imported_and_the_error_says_how_to_install_it(folder, tmp_path):
    script = (
        "import sys; sys.modules['ray'] = None  # as if ray were not installed: `import ray` raises ImportError\n"
        "import maskmargin.batch, maskmargin.cli.batch\n"
        "from maskmargin.cli import main\n"
        f"code = main(['batch', {str(folder)!r}, {str(tmp_path / 'out')!r}, '--model', {MODEL!r}, '--ray'])\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "error: batch --ray needs Ray: pip install 'maskmargin[ray]' (or pip install 'ray[data]==2.60.0')"
    )
    plain = "import sys, maskmargin.batch, maskmargin.cli.batch; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True).stdout.strip() == "False"
