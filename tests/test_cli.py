"""`python -m maskmargin run`: the API's format end to end, error cases included."""

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from photos import ASTRONAUT, astronaut_png
from PIL import Image

from maskmargin.cli import main
from maskmargin.detection import ImageDetections
from maskmargin.loader import load_detector
from maskmargin.masks import build_mask

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return astronaut_png(tmp_path_factory.mktemp("img"))


def task(photo, **fields):
    base = {
        "taskType": "imageMasking",
        "taskUUID": str(uuid.uuid4()),
        "inputImage": str(photo),
        "model": "mediapipe_face_full",
    }
    return base | fields


def run_cli(tmp_path, tasks, capsys):
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(json.dumps(tasks))
    code = main(["run", str(tasks_file), "--output-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_png_base64_mask_equals_the_engine_mask_and_boxes_match(tmp_path, photo, capsys):
    t = task(photo, outputFormat="PNG", outputType="base64Data", maskPadding=6, maskBlur=3, includeCost=True)
    code, answer = run_cli(tmp_path, [t], capsys)
    assert code == 0 and "errors" not in answer
    result = answer["data"][0]
    assert result["taskUUID"] == t["taskUUID"] and result["taskType"] == "imageMasking"
    assert uuid.UUID(result["inputImageUUID"]).version == 4 and uuid.UUID(result["maskImageUUID"]).version == 4
    assert result["cost"] == 0
    dets = load_detector("mediapipe_face_full").detect(ASTRONAUT, 0.25, 6)
    assert result["detections"] == [d.to_api() for d in dets]
    box = result["detections"][0]
    assert 165 < box["x_min"] < 190 and 265 < box["x_max"] < 290
    mask = decode(result["maskImageBase64Data"])
    expected = build_mask(ImageDetections(512, 512, tuple(dets)), 6, 3).numpy()
    assert mask.shape == (512, 512)
    assert np.array_equal(mask, np.rint(expected * 255).astype(np.uint8))


def test_url_output_writes_a_file_and_data_uri_output(tmp_path, photo, capsys):
    code, answer = run_cli(
        tmp_path, [task(photo, outputFormat="WEBP"), task(photo, outputType="dataURI", outputFormat="JPG")], capsys
    )
    assert code == 0
    url = answer["data"][0]["maskImageURL"]
    assert url.startswith("file://") and url.endswith(".webp")
    path = Path(url[len("file://") :])
    assert path.parent == (tmp_path / "out").resolve() and Image.open(path).size == (512, 512)
    assert answer["data"][1]["maskImageDataURI"].startswith("data:image/jpeg;base64,")
    assert "cost" not in answer["data"][0]


def test_upload_then_reuse_by_uuid_and_data_uri_input(tmp_path, photo, capsys):
    uri = "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": uri}
    code, answer = run_cli(tmp_path, [upload], capsys)
    assert code == 0
    image_uuid = answer["data"][0]["imageUUID"]
    assert uuid.UUID(image_uuid).version == 4
    code, answer = run_cli(tmp_path, [task(photo, inputImage=uri)], capsys)
    assert code == 0 and len(answer["data"][0]["detections"]) == 1
    # uploads live for one run of the command: a later run does not know the UUID, and says so
    code, answer = run_cli(tmp_path, [task(photo, inputImage=image_uuid)], capsys)
    assert code == 1 and "upload it first" in answer["errors"][0]["message"]


@pytest.mark.parametrize(
    "fields,parameter",
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"maxDetections": 0}, "maxDetections"),
        ({"maxDetections": 21}, "maxDetections"),
        ({"maxDetections": 2.5}, "maxDetections"),
        ({"maskBlur": -1}, "maskBlur"),
        ({"maskPadding": "4"}, "maskPadding"),
        ({"outputFormat": "GIF"}, "outputFormat"),
        ({"outputType": "file"}, "outputType"),
        ({"includeCost": "yes"}, "includeCost"),
        ({"model": "face_yolov9"}, "model"),
        ({"taskUUID": "not-a-uuid"}, "taskUUID"),
        ({"taskUUID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}, "taskUUID"),  # v1, not v4
        ({"inputImage": "/no/such/file.png"}, "inputImage"),
        ({"inputImage": str(uuid.uuid4())}, "inputImage"),
        ({"maskPading": 3}, "maskPading"),
    ],
)
def test_out_of_range_values_are_errors_naming_the_parameter(tmp_path, photo, capsys, fields, parameter):
    good = task(photo)
    bad = task(photo) | fields
    code, answer = run_cli(tmp_path, [good, bad], capsys)
    assert code == 1
    assert len(answer["data"]) == 1 and answer["data"][0]["taskUUID"] == good["taskUUID"], "others still run"
    (error,) = answer["errors"]
    assert error["parameter"] == parameter
    assert error["taskType"] == "imageMasking" and error["taskUUID"] == bad["taskUUID"]
    assert error["code"] and error["message"]


def test_missing_yolo_file_says_where_to_put_it(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setenv("MASKMARGIN_MODELS_DIR", str(tmp_path / "models"))
    code, answer = run_cli(tmp_path, [task(photo, model="runware:35@1")], capsys)
    assert code == 1
    message = answer["errors"][0]["message"]
    assert str(tmp_path / "models" / "ultralytics" / "bbox") in message
    assert "huggingface.co/Bingsu/adetailer" in message and answer["errors"][0]["parameter"] == "model"


def test_corrupt_image_is_an_error(tmp_path, photo, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, answer = run_cli(tmp_path, [task(photo, inputImage=str(broken))], capsys)
    assert code == 1 and answer["errors"][0]["parameter"] == "inputImage"


def test_duplicate_task_uuid_is_refused(tmp_path, photo, capsys):
    t = task(photo)
    code, answer = run_cli(tmp_path, [t, dict(t)], capsys)
    assert code == 1 and len(answer["data"]) == 1 and answer["errors"][0]["parameter"] == "taskUUID"


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["run", str(bad)]) == 2
    bad.write_text('{"taskType": "imageMasking"}')
    assert main(["run", str(bad)]) == 2
    assert main(["frobnicate"]) == 2
    assert "error" in capsys.readouterr().err


def test_subprocess_exit_codes_and_stdout_is_pure_json(tmp_path, photo):
    tasks_file = tmp_path / "t.json"
    tasks_file.write_text(json.dumps([task(photo, outputType="base64Data", outputFormat="PNG")]))
    ok = subprocess.run(
        [sys.executable, "-m", "maskmargin", "run", str(tasks_file), "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["data"][0]["detections"]
    tasks_file.write_text(json.dumps([task(photo, confidence=-0.1)]))
    failed = subprocess.run(
        [sys.executable, "-m", "maskmargin", "run", str(tasks_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert failed.returncode == 1 and json.loads(failed.stdout)["errors"][0]["parameter"] == "confidence"


def test_demo_writes_masks_previews_and_the_zoom_loop(tmp_path):
    import numpy as np
    from PIL import Image

    from maskmargin.cli.demo import run_demo

    names = {p.name for p in run_demo(tmp_path)}
    assert {
        "astronaut.png",
        "result.json",
        "mediapipe_face_full_mask.png",
        "eyes_mesh_mediapipe_preview.png",
        "face_crop.png",
        "anonymized.png",
    } <= names
    photo = np.asarray(Image.open(tmp_path / "astronaut.png")).astype(int)
    anonymized = np.asarray(Image.open(tmp_path / "anonymized.png")).astype(int)
    changed = np.abs(photo - anonymized).max(axis=-1) > 1
    face = np.asarray(Image.open(tmp_path / "mediapipe_face_full_mask.png")) > 0
    assert changed.any() and changed[:, :100].sum() == 0, "only the face changes"
    ys, xs = np.nonzero(changed)
    assert face[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].any()
    assert Image.open(tmp_path / "face_crop.png").size == (512, 512)


def test_relative_paths_are_read_from_the_tasks_files_folder_from_any_folder(tmp_path, monkeypatch):
    jobs = tmp_path / "jobs"
    (jobs / "photos").mkdir(parents=True)
    Image.fromarray(ASTRONAUT).save(jobs / "photos" / "a.png")
    tasks_file = jobs / "tasks.json"
    tasks_file.write_text(json.dumps([task("photos/a.png", outputType="base64Data"), task("photos/missing.png")]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the installed console script, started outside the clone: the package is installed into the venv
    script = Path(sys.executable).with_name("maskmargin")
    result = subprocess.run(
        [str(script), "run", str(tasks_file), "--output-dir", str(elsewhere / "out")],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=300,
        env=dict(os.environ, MASKMARGIN_MODELS_DIR=str(ROOT / "models")),
    )
    answer = json.loads(result.stdout)
    assert result.returncode == 1 and len(answer["data"]) == 1 and answer["data"][0]["detections"]
    (error,) = answer["errors"]
    assert error["parameter"] == "inputImage"
    assert f"no such file: {jobs / 'photos' / 'missing.png'}" in error["message"]


def test_an_over_long_base64_name_is_base64_not_a_file_error(tmp_path, capsys):
    # text before the first '/' over the file system's 255-character name limit (ENAMETOOLONG when stat'ed)
    bogus = "A" * 300 + "/" + "B" * 100
    code, answer = run_cli(tmp_path, [task(bogus)], capsys)
    assert code == 1 and answer["errors"][0]["code"] == "invalidParameter"
    assert "not valid base64" in answer["errors"][0]["message"] or "not a PNG" in answer["errors"][0]["message"]
