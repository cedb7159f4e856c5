"""The remote client against hostile or broken services (scripted loopback servers): trickling and huge
answers, huge masks, redirect loops, answers that contradict the request, long Retry-After, and an
API key that must not show in any error message wherever the text around it is cut."""

from __future__ import annotations

import base64
import itertools
import json
import struct
import time
import zlib

import numpy as np
import pytest
from loopback import Reply, ScriptedAPI, Stream, masking_answer, png_bytes, reply

from maskmargin.errors import RemoteError
from maskmargin.remote.answers import MAX_ANSWER_BYTES, MAX_MASK_BYTES
from maskmargin.remote.client import SHOWN_BODY, RemoteClient
from maskmargin.remote.config import RemoteConfig
from maskmargin.settings import MaskSettings

KEY = "rw-" + "7c1f0e9a4b2d8c6e5f3a1b0c9d8e7f6a5b4c3d2e1f"  # 46 characters, like a real key
IMAGE = np.full((60, 40, 3), 128, np.uint8)
MiB = 1024 * 1024


def config(api: ScriptedAPI, **changes) -> RemoteConfig:
    values = {"api_url": api.url + "/v1", "api_key": KEY, "timeout": 5.0, "retries": 0, "backoff": 0.01}
    return RemoteConfig(**(values | changes))


def mask_one(api: ScriptedAPI, max_detections: int = 6, **changes):
    with RemoteClient(config(api, **changes)) as client:
        return client.mask_images([IMAGE], "runware:35@6", MaskSettings(0.25, max_detections, 0, 0))[0]


def failure(api: ScriptedAPI, **changes) -> RemoteError:
    with pytest.raises(RemoteError) as err:
        mask_one(api, **changes)
    assert err.value.code != "internalError"
    return err.value


def answer(request, mask: bytes | None = None, boxes=((10, 20, 30, 50),), **extra) -> Reply:
    task = request.tasks()[-1]
    result = {
        "taskType": "imageMasking",
        "taskUUID": task["taskUUID"],
        "detections": [dict(zip(("x_min", "y_min", "x_max", "y_max"), b)) for b in boxes],
        "maskImageBase64Data": base64.b64encode(mask if mask is not None else box_png(boxes)).decode(),
    }
    return Reply(200, {"data": [result | extra]})


def url_answer(request, url: str) -> Reply:
    """An answer whose mask is to be downloaded from `url`."""
    result = answer(request).body["data"][0]
    del result["maskImageBase64Data"]
    return Reply(200, {"data": [result | {"maskImageURL": url}]})


def box_png(boxes, width=40, height=60) -> bytes:
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 255
    return png_bytes(mask)


def bomb_png(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# -- time: a trickle is given up at the deadline


def test_a_trickling_answer_is_given_up_at_the_overall_deadline():
    trickle = Stream(itertools.repeat(b" "), length=10_000, pause=0.2)  # headers, then a byte every 0.2 s
    with ScriptedAPI([lambda request: trickle]) as api:
        start = time.monotonic()
        err = failure(api, timeout=1.0)
        took = time.monotonic() - start
    assert err.message == (
        f"the remote service at {api.url}/v1 failed after 1 attempt: no complete answer within 1 s (MASKMARGIN_TIMEOUT)"
    )
    assert err.code == "remoteUnavailable"
    assert 0.9 < took < 3.0 and 3 <= trickle.sent <= 7  # each read came within the timeout; the whole did not


def test_a_trickle_is_retried_like_a_timeout_and_a_good_answer_then_wins():
    with ScriptedAPI([lambda r: Stream(itertools.repeat(b"{"), length=50, pause=0.3), masking_answer()]) as api:
        found = mask_one(api, timeout=0.8, retries=1)
    assert found.boxes == ((10.0, 20.0, 30.0, 50.0),) and len(api.requests) == 2


# -- size: huge answers are never read whole


def test_a_huge_declared_answer_is_refused_unread():
    huge = Stream(itertools.repeat(b"x" * 65536), length=300 * MiB)
    with ScriptedAPI([lambda request: huge]) as api:
        err = failure(api)
    assert err.message == "the remote service's answer is over 64 MB: not read"
    assert huge.sent < 16 * MiB  # the client hung up at the headers (the kernel's buffers took the rest)


def test_an_endless_answer_without_a_length_is_cut_at_the_cap():
    endless = Stream(itertools.repeat(b"[" * 65536))  # no Content-Length: read until the cap
    with ScriptedAPI([lambda request: endless]) as api:
        err = failure(api, timeout=20.0)
    assert err.message == "the remote service's answer is over 64 MB: not read"
    assert MAX_ANSWER_BYTES < endless.sent < MAX_ANSWER_BYTES + 16 * MiB


def test_a_huge_mask_url_body_is_refused():
    huge = Stream(itertools.repeat(b"\0" * 65536), headers={"Content-Type": "image/png"})
    with ScriptedAPI([lambda request: url_answer(request, api.url + "/mask.png"), lambda request: huge]) as api:
        err = failure(api, timeout=20.0)
    assert err.message == "the remote service's mask image is over 48 MB: not read"
    assert MAX_MASK_BYTES < huge.sent < MAX_MASK_BYTES + 16 * MiB


def test_a_decompression_bomb_mask_is_refused_before_decoding():
    with ScriptedAPI([lambda request: answer(request, mask=bomb_png(20000, 20000))]) as api:
        err = failure(api)
    assert err.message.startswith(
        "malformed answer from the remote service: the mask is not a readable image "
        "(Image size (400000000 pixels) exceeds limit of"
    )


@pytest.mark.parametrize("width,height", [(8000, 8000), (41, 60), (40, 61)])
def test_a_mask_larger_than_its_image_is_refused_before_decoding(width, height):
    with ScriptedAPI([lambda request: answer(request, mask=bomb_png(width, height))]) as api:
        err = failure(api)
    assert err.message == (
        f"malformed answer from the remote service: a {width}x{height} mask for a 40x60 image is larger "
        "than the image (not decoded)"
    )


def test_a_redirect_loop_on_the_mask_url_is_a_remote_error():
    loop = [
        lambda request: url_answer(request, api.url + "/loop"),
        lambda request: Reply(302, b"", {"Location": "/loop"}),
    ]
    with ScriptedAPI(loop) as api:
        err = failure(api)
    assert err.message == f"the remote service's mask image at {api.url}/loop redirects too often"
    assert err.code == "remoteError" and 20 <= len(api.requests) <= 22


def test_deeply_nested_json_is_a_malformed_answer():
    body = b"[" * 200_000 + b"]" * 200_000
    with ScriptedAPI([reply(200, body, Content_Type="application/json")]) as api:
        err = failure(api)
    assert err.message == (
        f"malformed answer from {api.url}/v1: HTTP 200 with a body that is not JSON (application/json): "
        f"{'[' * SHOWN_BODY!r}"
    )


# -- answers that contradict the request


@pytest.mark.parametrize(
    "boxes,message",
    [
        (
            [(1, 1, 3, 3)] * 7,
            "malformed answer from the remote service: 7 detections for maxDetections 6",
        ),
        (
            [(1, 1, 3, 3)] * 100_000,
            "malformed answer from the remote service: 100000 detections for maxDetections 6",
        ),
        (
            [(30, 20, 10, 50)],
            "malformed answer from the remote service: an inverted detection box (30, 20, 10, 50) "
            "(x_max < x_min or y_max < y_min)",
        ),
        (
            [(10, 50, 30, 20)],
            "malformed answer from the remote service: an inverted detection box (10, 50, 30, 20) "
            "(x_max < x_min or y_max < y_min)",
        ),
        (
            [(10, 20, 300, 50)],
            "malformed answer from the remote service: detection box (10, 20, 300, 50) lies outside its 40x60 mask",
        ),
        (
            [(-50, -50, -10, -10)],
            "malformed answer from the remote service: detection box (-50, -50, -10, -10) lies outside its 40x60 mask",
        ),
    ],
    ids=["7 for 6", "100000 for 6", "inverted x", "inverted y", "past the right edge", "off the image"],
)
def test_boxes_that_contradict_the_request_or_the_mask_are_refused(boxes, message):
    mask = box_png([(10, 20, 30, 50)])
    with ScriptedAPI([lambda request: answer(request, mask=mask, boxes=boxes)]) as api:
        err = failure(api)
    assert err.message == message


def test_a_mask_with_shapes_but_no_detection_is_refused():
    mask = box_png([(10, 20, 30, 50)])
    with ScriptedAPI([lambda request: answer(request, mask=mask, boxes=())]) as api:
        err = failure(api)
    assert err.message == "malformed answer from the remote service: the mask shows shapes but no detection is listed"


def test_an_empty_answer_is_still_fine():
    with ScriptedAPI([lambda request: answer(request, mask=box_png([]), boxes=())]) as api:
        found = mask_one(api)
    assert found.boxes == () and found.mask.max() == 0.0


def test_six_detections_for_six_are_passed_on():
    boxes = [(i * 6, 0, i * 6 + 5, 5) for i in range(6)]
    with ScriptedAPI([lambda request: answer(request, boxes=boxes)]) as api:
        found = mask_one(api)
    assert len(found.boxes) == 6


# -- Retry-After


def test_a_long_retry_after_gives_up_at_once():
    with ScriptedAPI([reply(429, {"errors": []}, Retry_After="3600")]) as api:
        start = time.monotonic()
        err = failure(api, retries=4)
    assert time.monotonic() - start < 2.0 and len(api.requests) == 1
    assert err.message == (
        f"the remote service at {api.url}/v1 answered HTTP 429 and asks to wait 3600 s before retrying "
        "(more than 120 s): try again later"
    )
    assert err.code == "remoteUnavailable"


def test_a_retry_after_within_the_limit_is_waited_out():
    with ScriptedAPI([reply(503, b"", Retry_After="0.5"), masking_answer()]) as api:
        with RemoteClient(config(api, retries=1)) as client:
            client.mask_images([IMAGE], "runware:35@6", MaskSettings(0.25, 6, 0, 0))
    assert client.retry_log == [("HTTP 503", 0.5)]


# -- the API key never shows, wherever a cut falls


def assert_no_key_piece(text: str) -> None:
    """No 8 consecutive characters of the key appear in `text`."""
    pieces = {KEY[i : i + 8] for i in range(len(KEY) - 7)}
    assert not any(p in text for p in pieces), text


@pytest.mark.parametrize("offset", range(SHOWN_BODY - len(KEY) - 1, SHOWN_BODY + 2))
def test_a_key_straddling_the_quoted_body_cut_is_redacted(offset):
    body = ("x" * offset + KEY + "y" * 300).encode()
    with ScriptedAPI([reply(200, body, Content_Type="text/html")]) as api:
        err = failure(api)
    assert_no_key_piece(err.message)
    assert err.message.startswith(f"malformed answer from {api.url}/v1: HTTP 200 with a body that is not JSON")


@pytest.mark.parametrize("offset", range(300 - len(KEY) - 1, 302, 3))
@pytest.mark.parametrize("field", ["message", "parameter", "code"])
def test_a_key_straddling_the_error_detail_cut_is_redacted(offset, field):
    detail = {"message": "bad", "parameter": "inputImage", "code": "invalid"} | {field: "m" * offset + KEY + "z" * 400}
    with ScriptedAPI([reply(400, {"errors": [detail]})]) as api:
        err = failure(api)
    for text in (err.message, err.parameter or "", err.code or ""):
        assert_no_key_piece(text)


def test_a_key_in_a_redirected_url_is_not_shown():
    loop = [
        lambda request: url_answer(request, f"{api.url}/loop?token={KEY}"),
        lambda request: Reply(302, b"", {"Location": request.path}),
    ]
    with ScriptedAPI(loop) as api:
        err = failure(api)
    assert_no_key_piece(err.message)
    assert err.message == f"the remote service's mask image at {api.url}/loop?token=[redacted] redirects too often"


def test_the_answers_json_is_the_body_read_not_a_second_request():
    with ScriptedAPI([lambda request: Reply(200, json.dumps({"data": []}).encode())]) as api:
        err = failure(api)
    assert err.message.startswith("malformed answer from the remote service: no imageMasking result for task ")
    assert len(api.requests) == 1
