"""The bad-input matrix: every case through `api_tasks.run_tasks` (the entry point the command line and
the service share) with the command line's real context and the real face detector. Each case ends
in one exact outcome: a mask with the face where it belongs, or an error naming the parameter, and
never internalError."""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from photos import ASTRONAUT
from PIL import Image

from maskmargin.api_tasks import run_tasks
from maskmargin.cli import main
from maskmargin.cli.local_context import LocalContext

FACE = (175, 70, 280, 175)  # the astronaut's face in her 512 px photo (x0, y0, x1, y1)
INPUT = "inputImage"


def encoded(pixels: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims width x height gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1))  # one row; a decoder would want `height` of them
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def gray16() -> bytes:
    gray = cv2.cvtColor(ASTRONAUT, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257  # 0..65535
    return encoded(Image.fromarray(gray))


def rgb16() -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(ASTRONAUT, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert ok
    return data.tobytes()


def palette_with_transparency() -> bytes:
    img = Image.fromarray(ASTRONAUT).quantize(colors=256)
    return encoded(img, transparency=0)


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(ASTRONAUT), Image.fromarray(np.zeros_like(ASTRONAUT))]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


# how each EXIF orientation's stored pixels are made from the upright photo (the inverse of what a
# viewer applies), so that every file shows the astronaut upright
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def exif_jpeg(orientation: int) -> bytes:
    img = Image.fromarray(ASTRONAUT)
    if STORED[orientation] is not None:
        img = img.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(img, "JPEG", quality=95, exif=exif)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


FACE_CASES = {
    "16-bit gray PNG": lambda: gray16(),
    "16-bit RGB PNG": lambda: rgb16(),
    "CMYK JPEG": lambda: encoded(Image.fromarray(ASTRONAUT).convert("CMYK"), "JPEG", quality=95),
    "palette PNG with tRNS": lambda: palette_with_transparency(),
    "RGBA PNG": lambda: encoded(np.dstack([ASTRONAUT, np.full(ASTRONAUT.shape[:2], 255, np.uint8)])),
    "animated PNG (first frame)": lambda: animated("PNG"),
    "animated WEBP (first frame)": lambda: animated("WEBP"),
    **{f"JPEG with EXIF orientation {o}": (lambda o=o: exif_jpeg(o)) for o in STORED},
}


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> LocalContext:
    return LocalContext(tmp_path_factory.mktemp("out"))


def task(**fields) -> dict:
    base = {
        "taskType": "imageMasking",
        "taskUUID": str(uuid.uuid4()),
        INPUT: "data:image/png;base64," + b64(encoded(ASTRONAUT)),
        "model": "mediapipe_face_full",
        "outputType": "base64Data",
        "outputFormat": "PNG",
        "maskPadding": 0,
        "maskBlur": 0,
    }
    return {k: v for k, v in (base | fields).items() if v is not ...}


def run_one(context: LocalContext, t: dict) -> dict:
    answer = run_tasks([t], context)
    json.dumps(answer)  # every answer can be sent as JSON
    if answer.get("errors"):
        (error,) = answer["errors"]
        assert error["code"] != "internalError", error
        return {"error": error}
    (result,) = answer["data"]
    return {"result": result}


def mask_of(result: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(result["maskImageBase64Data"]))))


@pytest.mark.parametrize("make", FACE_CASES.values(), ids=FACE_CASES.keys())
@pytest.mark.parametrize("as_", ["file", "dataURI", "base64"])
def test_images_of_every_kind_give_the_face_where_it_is(context, tmp_path, make, as_):
    data = make()
    if as_ == "file":
        path = tmp_path / "input.img"
        path.write_bytes(data)
        reference = str(path)
    elif as_ == "dataURI":
        reference = "data:image/png;base64," + b64(data)  # the media type says PNG whatever the bytes are
    else:
        reference = b64(data)
    out = run_one(context, task(inputImage=reference))
    assert "result" in out, out
    result = out["result"]
    (box,) = result["detections"]
    cx, cy = (box["x_min"] + box["x_max"]) / 2, (box["y_min"] + box["y_max"]) / 2
    assert FACE[0] < cx < FACE[2] and FACE[1] < cy < FACE[3], box
    mask = mask_of(result)
    assert mask.shape == (512, 512)
    assert mask[int(cy), int(cx)] == 255 and mask[0, 0] == 0 and mask[500, 500] == 0
    assert mask[box["y_min"] : box["y_max"], box["x_min"] : box["x_max"]].min() == 255
    assert mask.sum() == 255 * (box["x_max"] - box["x_min"]) * (box["y_max"] - box["y_min"])


def test_a_1x1_image_is_answered_with_an_empty_1x1_mask(context):
    out = run_one(context, task(inputImage=b64(encoded(ASTRONAUT[:1, :1]))))
    assert out["result"]["detections"] == [] and mask_of(out["result"]).tolist() == [[0]]


PNG = encoded(ASTRONAUT)
NOT_AN_IMAGE = "inputImage is not a PNG, JPG or WEBP image"

ERROR_CASES = {
    # (inputImage or other fields, parameter, message or message prefix ending in "...")
    "zero bytes": ({INPUT: "data:image/png;base64,"}, INPUT, NOT_AN_IMAGE),
    "truncated PNG": (
        {INPUT: b64(PNG[: len(PNG) // 2])},
        INPUT,
        "inputImage is not a readable PNG, JPG or WEBP image (...",
    ),
    "PNG header only": (
        {INPUT: "data:image/png;base64," + b64(PNG[:8])},
        INPUT,
        "inputImage is not a readable PNG, JPG or WEBP image (...",
    ),
    "decompression bomb": (
        {INPUT: b64(bomb_png(40000, 40000))},
        INPUT,
        "inputImage is not a readable PNG, JPG or WEBP image (Image size (1600000000 pixels) exceeds limit of ...",
    ),
    "GIF bytes": ({INPUT: b64(encoded(ASTRONAUT, "GIF"))}, INPUT, NOT_AN_IMAGE),
    "BMP bytes": ({INPUT: b64(encoded(ASTRONAUT, "BMP"))}, INPUT, NOT_AN_IMAGE),
    "text bytes": ({INPUT: b64(b"hello, this is not an image at all" * 3)}, INPUT, NOT_AN_IMAGE),
    "GIF as a data URI": ({INPUT: "data:image/gif;base64," + b64(encoded(ASTRONAUT, "GIF"))}, INPUT, NOT_AN_IMAGE),
    "data URI not base64": ({INPUT: "data:image/png,abc"}, INPUT, "inputImage data URI must be base64 encoded"),
    "bad base64": (
        {INPUT: "data:image/png;base64,@@@@"},
        INPUT,
        "inputImage is not valid base64 (Only base64 data is allowed)",
    ),
    "base64 with a 300-character name before '/'": (
        {INPUT: "A" * 300 + "/" + "B" * 99},
        INPUT,
        NOT_AN_IMAGE,  # read as base64 (ENAMETOOLONG, had it been taken for a path), then sniffed
    ),
    "base64 with a 300-character name, not a multiple of 4": (
        {INPUT: "A" * 300 + "/" + "B" * 100},
        INPUT,
        "inputImage is not valid base64 (Invalid base64-encoded string: number of data characters (401) "
        "cannot be 1 more than a multiple of 4)",
    ),
    "over-long base64 text": ({INPUT: "QUJD" * 300_000}, INPUT, NOT_AN_IMAGE),
    "8 KB path-like text": ({INPUT: "x/" * 4096}, INPUT, NOT_AN_IMAGE),
    "8 KB path-like text with dots": (
        {INPUT: "../" * 4096},
        INPUT,
        "inputImage is not valid base64 (Only base64 data is allowed)",
    ),
    "unknown UUID": (
        {INPUT: "0b0e4f6a-3d1c-4c47-9a43-7d0d5ad0b001"},
        INPUT,
        "no image with UUID 0b0e4f6a-3d1c-4c47-9a43-7d0d5ad0b001: upload it first (imageUpload)",
    ),
    "no such file": ({INPUT: "/no/such/photo.png"}, INPUT, "inputImage: no such file: /no/such/photo.png (..."),
    "inputImage missing": ({INPUT: ...}, INPUT, "inputImage is required (a non-empty string)"),
    "inputImage a number": ({INPUT: 5}, INPUT, "inputImage is required (a non-empty string)"),
    "inputImage empty": ({INPUT: ""}, INPUT, "inputImage is required (a non-empty string)"),
    "taskType missing": ({"taskType": ...}, "taskType", "unsupported taskType None; use imageMasking or imageUpload"),
    "taskType a number": ({"taskType": 7}, "taskType", "unsupported taskType 7; use imageMasking or imageUpload"),
    "taskType unknown": (
        {"taskType": "imageInference"},
        "taskType",
        "unsupported taskType 'imageInference'; use imageMasking or imageUpload",
    ),
    "taskUUID missing": ({"taskUUID": ...}, "taskUUID", "taskUUID is required (a UUID v4 string)"),
    "taskUUID a number": ({"taskUUID": 5}, "taskUUID", "taskUUID must be a UUID v4 string, got 5"),
    "taskUUID v1": (
        {"taskUUID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
        "taskUUID",
        "taskUUID must be a UUID v4 string, got '6ba7b810-9dad-11d1-80b4-00c04fd430c8'",
    ),
    "model missing": ({"model": ...}, "model", "model is required (a non-empty string)"),
    "model a number": ({"model": 7}, "model", "model is required (a non-empty string)"),
    "model unknown": ({"model": "face_yolov9"}, "model", "unknown model 'face_yolov9'; use one of: ..."),
    "confidence text": ({"confidence": "0.5"}, "confidence", "confidence must be a number from 0 to 1, got '0.5'"),
    "confidence true": ({"confidence": True}, "confidence", "confidence must be a number from 0 to 1, got True"),
    "confidence NaN": ({"confidence": float("nan")}, "confidence", "confidence must be a number from 0 to 1, got nan"),
    "confidence below 0": ({"confidence": -0.1}, "confidence", "confidence must be a number from 0 to 1, got -0.1"),
    "confidence above 1": ({"confidence": 1.5}, "confidence", "confidence must be a number from 0 to 1, got 1.5"),
    "confidence nested": (
        {"confidence": json.loads("[" * 500 + "]" * 500)},
        "confidence",
        "confidence must be a number from 0 to 1, got [[[...]]]",
    ),
    "maxDetections text": (
        {"maxDetections": "6"},
        "maxDetections",
        "maxDetections must be an integer from 1 to 20, got '6'",
    ),
    "maxDetections fraction": (
        {"maxDetections": 2.5},
        "maxDetections",
        "maxDetections must be an integer from 1 to 20, got 2.5",
    ),
    "maxDetections 0": ({"maxDetections": 0}, "maxDetections", "maxDetections must be an integer from 1 to 20, got 0"),
    "maxDetections 21": (
        {"maxDetections": 21},
        "maxDetections",
        "maxDetections must be an integer from 1 to 20, got 21",
    ),
    "maskPadding text": (
        {"maskPadding": "4"},
        "maskPadding",
        "maskPadding must be an integer from -1024 to 1024, got '4'",
    ),
    "maskPadding huge": (
        {"maskPadding": 10**30},
        "maskPadding",
        "maskPadding must be an integer from -1024 to 1024, got 1000000000000000000000000000000",
    ),
    "maskBlur negative": ({"maskBlur": -1}, "maskBlur", "maskBlur must be an integer from 0 to 1024, got -1"),
    "maskBlur an object": (
        {"maskBlur": {"a": 1}},
        "maskBlur",
        "maskBlur must be an integer from 0 to 1024, got {'a': 1}",
    ),
    "outputFormat GIF": (
        {"outputFormat": "GIF"},
        "outputFormat",
        "outputFormat must be one of JPG, PNG, WEBP, got 'GIF'",
    ),
    "outputFormat a number": ({"outputFormat": 5}, "outputFormat", "outputFormat must be one of JPG, PNG, WEBP, got 5"),
    "outputType unknown": (
        {"outputType": "file"},
        "outputType",
        "outputType must be one of base64Data, dataURI, URL, got 'file'",
    ),
    "includeCost 1": ({"includeCost": 1}, "includeCost", "includeCost must be true or false, got 1"),
    "uploadEndpoint ftp": ({"uploadEndpoint": "ftp://x/y"}, "uploadEndpoint", "uploadEndpoint must be an http(s) URL"),
    "uploadEndpoint a list": ({"uploadEndpoint": [1]}, "uploadEndpoint", "uploadEndpoint must be an http(s) URL"),
    "unknown field": ({"maskPading": 3}, "maskPading", "unknown field 'maskPading' for imageMasking; allowed: ..."),
    "a long unknown field": (
        {"x" * 10_000: 1},
        "x" * 10_000,
        f"unknown field '{'x' * 27}...{'x' * 28}' for imageMasking; allowed: ...",
    ),
}


@pytest.mark.parametrize("fields,parameter,message", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_bad_inputs_are_errors_naming_the_parameter(context, fields, parameter, message):
    t = task(**fields)
    error = run_one(context, t)["error"]
    assert error["code"] == "invalidParameter" and error["parameter"] == parameter
    if message.endswith("..."):
        assert error["message"].startswith(message[:-3]), error["message"]
    else:
        assert error["message"] == message
    assert len(error["message"]) < 1000  # values are quoted short, whatever their size
    assert error["taskUUID"] == (t.get("taskUUID") if isinstance(t.get("taskUUID"), str) else None)


def test_a_task_that_is_not_an_object_and_structures_in_echoed_fields(context):
    answer = run_tasks([[1, 2], {"taskType": [[[]]], "taskUUID": {"a": [1]}}], context)
    assert answer["data"] == []
    first, second = answer["errors"]
    assert first["message"] == "each task must be a JSON object" and first["parameter"] == "taskType"
    assert second["taskType"] is None and second["taskUUID"] is None  # never echoed back as structures
    assert second["message"] == "unsupported taskType [[[]]]; use imageMasking or imageUpload"


def run_cli(tmp_path: Path, text: str, capsys) -> tuple[int, str, str]:
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(text)
    code = main(["run", str(tasks_file), "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "text,message",
    [
        ("[" * 100_000 + "]" * 100_000, "arrays or objects nest too deeply"),
        ("[" + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "]", "arrays or objects nest too deeply"),
        ("[{}, {]", "Expecting property name enclosed in double quotes at character 7"),
        ("[{}] [{}]", "there is more text after the closing ']'"),
        ("[{}", "the text ends before the closing ']'"),
        ('{"taskType": "imageMasking"}', "it does not start with '['"),
        ("", "it does not start with '['"),
    ],
    ids=["nested arrays", "nested objects", "syntax error", "two arrays", "unclosed", "an object", "empty"],
)
def test_a_broken_tasks_file_is_a_usage_error_and_runs_nothing(tmp_path, capsys, text, message):
    code, out, err = run_cli(tmp_path, text, capsys)
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path / 'tasks.json'} is not a JSON array of tasks: {message}\n"
    assert not (tmp_path / "out").exists()


def test_an_empty_task_array_is_a_usage_error(tmp_path, capsys):
    code, out, err = run_cli(tmp_path, " [ ] ", capsys)
    assert (code, out) == (2, "") and err == "error: the tasks file must hold a non-empty JSON array of task objects\n"


@pytest.mark.parametrize(
    "fields,parameter,message",
    [
        ({"image": ...}, "image", "image is required (a non-empty string)"),
        ({"image": 5}, "image", "image is required (a non-empty string)"),
        ({"image": "data:image/png;base64,@@"}, "image", "image is not valid base64 (Only base64 data is allowed)"),
        ({"image": "data:image/png;base64," + b64(PNG[:100])}, "image", "image is not a readable PNG, JPG or WEBP"),
        ({"image": b64(encoded(ASTRONAUT, "GIF"))}, "image", "image is not a PNG, JPG or WEBP image"),
        ({"taskUUID": [1]}, "taskUUID", "taskUUID must be a UUID v4 string, got [1]"),
        (
            {"inputImage": "x"},
            "inputImage",
            "unknown field 'inputImage' for imageUpload; allowed: image, taskType, taskUUID",
        ),
    ],
)
def test_bad_uploads_are_errors_naming_the_parameter(context, fields, parameter, message):
    t = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": b64(PNG)} | fields
    error = run_one(context, {k: v for k, v in t.items() if v is not ...})["error"]
    assert error["code"] == "invalidParameter" and error["parameter"] == parameter
    assert error["message"].startswith(message), error["message"]


def test_a_good_upload_gives_a_uuid(context):
    out = run_one(context, {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": b64(PNG)})
    assert uuid.UUID(out["result"]["imageUUID"]).version == 4


def test_a_tasks_file_with_a_byte_order_mark_runs(tmp_path, capsys):
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_bytes(b"\xef\xbb\xbf" + json.dumps([task()]).encode())
    code = main(["run", str(tasks_file), "--output-dir", str(tmp_path / "out")])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and len(answer["data"][0]["detections"]) == 1
