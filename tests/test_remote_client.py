"""The remote client against scripted loopback servers: retries, timeouts, malformed answers, scaling, secrets."""

import logging
import threading

import numpy as np
import pytest
from loopback import DROP, Reply, ScriptedAPI, drop, masking_answer, reply, serve_mask, wait_for_hangup

from maskmargin.errors import AuthenticationError, InvalidParameter, RemoteError
from maskmargin.registry import find_model
from maskmargin.remote.client import RemoteClient
from maskmargin.remote.config import RemoteConfig
from maskmargin.remote.detector import RemoteDetector, remote_detections
from maskmargin.settings import MaskSettings

KEY = "rw-test-key-5f2c9e7d1b"
IMAGE = np.full((60, 40, 3), 128, np.uint8)
SETTINGS = MaskSettings(0.25, 6, 0, 0)


def config(api, **changes) -> RemoteConfig:
    values = {"api_url": api.url + "/v1", "api_key": KEY, "timeout": 5.0, "retries": 3, "backoff": 0.01}
    return RemoteConfig(**(values | changes))


def mask_one(api, image=IMAGE, **changes):
    with RemoteClient(config(api, **changes)) as client:
        found = client.mask_images([image], "runware:35@6", SETTINGS)[0]
    return client, found


def test_a_task_is_sent_in_the_api_format_with_a_bearer_key():
    with ScriptedAPI([masking_answer()]) as api:
        client, found = mask_one(api)
    (request,) = api.requests
    assert request.method == "POST" and request.path == "/v1"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    (task,) = request.tasks()
    assert task["taskType"] == "imageMasking" and task["model"] == "runware:35@6"
    assert task["inputImage"].startswith("data:image/png;base64,")
    assert {
        k: task[k]
        for k in ("confidence", "maxDetections", "maskPadding", "maskBlur", "outputFormat", "outputType", "includeCost")
    } == {
        "confidence": 0.25,
        "maxDetections": 6,
        "maskPadding": 0,
        "maskBlur": 0,
        "outputFormat": "PNG",
        "outputType": "base64Data",
        "includeCost": True,
    }
    assert found.boxes == ((10.0, 20.0, 30.0, 50.0),) and found.mask.shape == (60, 40)
    assert found.cost == 0.0013 and found.scale == (1.0, 1.0) and client.requests == 1 and client.retry_log == []
    assert found.mask[20:50, 10:30].min() == 1.0 and found.mask.sum() == 20 * 30


def test_429_then_200_waits_as_retry_after_says():
    with ScriptedAPI([reply(429, {"errors": []}, Retry_After="1"), masking_answer()]) as api:
        client, found = mask_one(api)
    assert client.retry_log == [("HTTP 429", 1.0)]
    assert client.requests == 2 and len(api.requests) == 2 and found.boxes == ((10.0, 20.0, 30.0, 50.0),)


def test_503_is_retried_with_doubling_backoff_then_reported():
    with ScriptedAPI([reply(503, b"busy")]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api, retries=2, backoff=0.01)
    assert len(api.requests) == 3
    assert err.value.message == f"the remote service at {api.url}/v1 failed after 3 attempts: HTTP 503"
    assert err.value.code == "remoteUnavailable"


def test_503_then_success_keeps_the_backoff_log():
    with ScriptedAPI([reply(503), reply(502), masking_answer()]) as api:
        client, found = mask_one(api, backoff=0.02)
    assert client.retry_log == [("HTTP 503", 0.02), ("HTTP 502", 0.04)] and client.requests == 3


def test_invalid_json_is_reported_not_retried():
    with ScriptedAPI([reply(200, b"<html>gateway</html>", Content_Type="text/html")]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert len(api.requests) == 1
    assert err.value.message == (
        f"malformed answer from {api.url}/v1: HTTP 200 with a body that is not JSON (text/html): '<html>gateway</html>'"
    )


@pytest.mark.parametrize(
    "body, text",
    [
        ({"data": "nope"}, 'expected an object with a "data" array'),
        ({"data": []}, "no imageMasking result for task"),
        ({"data": [{"taskUUID": None}]}, "no imageMasking result for task"),
    ],
)
def test_malformed_answers_are_named(body, text):
    with ScriptedAPI([reply(200, body)]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert text in err.value.message and err.value.message.startswith("malformed answer from")


def test_a_result_without_mask_or_with_bad_boxes_is_malformed():
    def answer(request, **fields):
        task = request.tasks()[0]
        return Reply(200, {"data": [{"taskUUID": task["taskUUID"], "taskType": "imageMasking"} | fields]})

    with ScriptedAPI([lambda r: answer(r, detections=[])]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert err.value.message == (
        "malformed answer from the remote service: the result has no maskImageBase64Data, "
        "maskImageDataURI or maskImageURL"
    )
    with ScriptedAPI([lambda r: answer(r, detections=[{"x_min": 1}], maskImageBase64Data="")]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert "a detection lacks x_min, y_min, x_max or y_max numbers" in err.value.message
    with ScriptedAPI([lambda r: answer(r, detections=[], maskImageBase64Data="bm90IGFuIGltYWdl")]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert (
        err.value.message
        == "malformed answer from the remote service: the mask is not a readable image (not a PNG, JPG or WEBP image)"
    )


def test_a_dropped_connection_is_retried():
    with ScriptedAPI([drop, masking_answer()]) as api:
        client, found = mask_one(api)
    assert len(client.retry_log) == 1 and client.retry_log[0][0].startswith("connection failed (")
    assert client.requests == 2 and found.boxes


def test_a_slow_answer_past_the_timeout_is_retried_then_reported():
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return DROP

    with ScriptedAPI([slow]) as api:
        try:
            with pytest.raises(RemoteError) as err:
                mask_one(api, timeout=0.3, retries=1)
        finally:
            release.set()
    assert len(api.requests) == 2
    assert err.value.message.endswith("failed after 2 attempts: no complete answer within 0.3 s (MASKMARGIN_TIMEOUT)")


def test_timeout_comes_from_maskmargin_timeout():
    cfg = RemoteConfig.from_env({"MASKMARGIN_TIMEOUT": "7.5", "RUNWARE_API_KEY": KEY})
    assert cfg.timeout == 7.5 and cfg.api_url == "https://api.runware.ai/v1" and cfg.api_key == KEY
    cfg = RemoteConfig.from_env({"RUNWARE_API_URL": "http://127.0.0.1:8700/v1"})
    assert cfg.api_url == "http://127.0.0.1:8700/v1" and cfg.api_key is None and cfg.timeout == 60.0
    with pytest.raises(InvalidParameter) as err:
        RemoteConfig.from_env({"MASKMARGIN_TIMEOUT": "soon"})
    assert err.value.parameter == "MASKMARGIN_TIMEOUT"
    with pytest.raises(InvalidParameter) as err:
        RemoteConfig.from_env({"RUNWARE_API_URL": "ftp://x"})
    assert err.value.parameter == "RUNWARE_API_URL"


def test_a_mask_capped_at_2048_is_scaled_back_with_its_boxes():
    big = np.zeros((2000, 3000, 3), np.uint8)
    capped = [(1024, 512, 1536, 1024)]
    with ScriptedAPI([masking_answer(boxes=capped, mask_size=(2048, 1365))]) as api:
        _, found = mask_one(api, image=big)
    assert found.mask.shape == (2000, 3000) and found.scale == (3000 / 2048, 2000 / 1365)
    (box,) = found.boxes
    assert box == pytest.approx((1500.0, 512 * 2000 / 1365, 2250.0, 1024 * 2000 / 1365))
    inside = found.mask > 0.5
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    assert (cols[0], cols[-1] + 1) == (1500, 2250)  # x scales by exactly 3000/2048
    assert abs(rows[0] - 750.2) <= 1 and abs(rows[-1] + 1 - 1500.4) <= 1
    (det,) = remote_detections(found, "mediapipe_face_full").detections
    assert det.to_api() == {"x_min": 1500, "y_min": 750, "x_max": 2250, "y_max": 1500}


def test_a_mask_that_is_no_scaled_copy_is_refused():
    with ScriptedAPI([masking_answer(mask_size=(40, 40))]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert err.value.message == (
        "malformed answer from the remote service: a 40x40 mask for a 40x60 image is not a scaled copy of it"
    )


@pytest.mark.parametrize("output", ["base64Data", "dataURI", "URL"])
def test_every_output_type_gives_the_same_mask(output):
    with ScriptedAPI() as api:
        api.script = [masking_answer(output=output, url_base=api.url), serve_mask]
        client, found = mask_one(api)
    assert found.mask.shape == (60, 40) and found.mask.sum() == 20 * 30
    if output == "URL":
        assert [r.method for r in api.requests] == ["POST", "GET"]
        assert "Authorization" not in api.requests[1].headers, "the key goes to the API URL only"


def test_400_names_the_parameter():
    body = {
        "errors": [
            {
                "code": "invalidParameter",
                "message": "maxDetections must be from 1 to 20",
                "parameter": "maxDetections",
                "taskType": "imageMasking",
                "taskUUID": None,
            }
        ]
    }
    with ScriptedAPI([reply(400, body)]) as api:
        with pytest.raises(RemoteError) as err:
            mask_one(api)
    assert err.value.parameter == "maxDetections" and err.value.code == "invalidParameter"
    assert err.value.message == "the remote service rejected maxDetections: maxDetections must be from 1 to 20"
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    "status, code, text",
    [
        (
            401,
            "authenticationFailed",
            "refused the request (HTTP 401): the API key is wrong or revoked: check "
            "RUNWARE_API_KEY (or the key saved in ComfyUI)",
        ),
        (402, "insufficientCredit", "says the account has no credit left (HTTP 402): top it up"),
        (403, "forbidden", "does not allow this API key to mask images (HTTP 403)"),
    ],
)
def test_auth_errors_say_what_is_wrong_without_the_key(status, code, text):
    echo = {"errors": [{"code": "x", "message": f"bad key {KEY}", "parameter": "apiKey"}]}
    with ScriptedAPI([reply(status, echo)]) as api:
        with pytest.raises(AuthenticationError) as err:
            mask_one(api)
    assert err.value.code == code and err.value.parameter == "apiKey"
    assert err.value.message == f"{api.url}/v1 {text} (service said: bad key [redacted])"
    assert KEY not in str(err.value) and len(api.requests) == 1


def test_401_without_a_key_says_to_set_one():
    with ScriptedAPI([reply(401, {"errors": []})]) as api:
        with pytest.raises(AuthenticationError) as err:
            mask_one(api, api_key=None)
    assert "Authorization" not in api.requests[0].headers
    assert err.value.message == (
        f"{api.url}/v1 refused the request (HTTP 401): no API key is set: set "
        "RUNWARE_API_KEY (or save the key in ComfyUI)"
    )


def test_the_key_never_appears_in_reprs_or_logs(caplog):
    cfg = RemoteConfig(api_url="http://127.0.0.1:1/v1", api_key=KEY)
    det = RemoteDetector(find_model("mediapipe_face_full"), cfg)
    with RemoteClient(cfg) as client:
        texts = [repr(cfg), str(cfg), repr(client), repr(det)]
    assert all(KEY not in t for t in texts) and "api_key=set" in repr(cfg)
    caplog.set_level(logging.DEBUG)
    with ScriptedAPI([reply(503, f"down {KEY}".encode()), reply(401, {"errors": [{"message": KEY}]})]) as api:
        with pytest.raises(AuthenticationError) as err:
            mask_one(api)
    assert KEY not in caplog.text and KEY not in str(err.value) and "retrying" in caplog.text


def test_batches_run_concurrently_up_to_the_bound():
    state = {"now": 0, "max": 0, "n": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=5)
    answer = masking_answer()

    def counted(request):
        with lock:
            state["now"] += 1
            state["n"] += 1
            first = state["n"] <= 3
            state["max"] = max(state["max"], state["now"])
        if first:
            barrier.wait()  # the first three meet only if three are in flight together
        with lock:
            state["now"] -= 1
        return answer(request)

    done = []
    with ScriptedAPI([counted]) as api:
        with RemoteClient(config(api, concurrency=3)) as client:
            images = [np.full((60, 40, 3), i, np.uint8) for i in range(8)]
            found = client.mask_images(images, "runware:35@6", SETTINGS, progress=lambda d, t: done.append((d, t)))
    assert state["max"] == 3 and len(api.requests) == 8 and len(found) == 8
    assert done == [(i, 8) for i in range(1, 9)]


def test_interruption_cancels_the_request_in_flight():
    received, gone = threading.Event(), threading.Event()

    def hang(request):
        received.set()
        if wait_for_hangup(request):
            gone.set()
        return DROP

    class Stop(Exception):
        pass

    def stop_check():
        if received.is_set():
            raise Stop()

    with ScriptedAPI([hang]) as api:
        with RemoteClient(config(api, timeout=30), stop_check=stop_check) as client:
            with pytest.raises(Stop):
                client.mask_images([IMAGE], "runware:35@6", SETTINGS)
        assert gone.wait(10), "the server saw the client hang up"
    assert client.requests == 1 and client.retry_log == []


def test_upload_once_then_reuse_by_uuid_and_resend_when_forgotten():
    uploaded = "5b0f6c1e-8a3d-4f2b-9c7e-1d2a3b4c5d6e"

    def upload(request):
        task = request.tasks()[0]
        assert task["taskType"] == "imageUpload" and task["image"].startswith("data:image/png;base64,")
        return Reply(200, {"data": [{"taskType": "imageUpload", "taskUUID": task["taskUUID"], "imageUUID": uploaded}]})

    def by_uuid(request):
        task = request.tasks()[0]
        assert task["inputImage"] == uploaded
        return Reply(
            200,
            {
                "data": [
                    {
                        "taskType": "imageMasking",
                        "taskUUID": task["taskUUID"],
                        "inputImageUUID": uploaded,
                        "detections": [],
                        "maskImageBase64Data": _empty_png(),
                    }
                ]
            },
        )

    forgotten = reply(
        400, {"errors": [{"code": "invalidParameter", "message": "unknown image", "parameter": "inputImage"}]}
    )
    with ScriptedAPI([upload, by_uuid, by_uuid, forgotten, masking_answer()]) as api:
        with RemoteClient(config(api, upload=True)) as client:
            client.mask_images([IMAGE, IMAGE], "runware:35@6", SETTINGS)  # one upload for both
            client.mask_images([IMAGE], "runware:35@6", SETTINGS)  # the service forgot: data URI again
    kinds = [r.tasks()[0]["taskType"] for r in api.requests]
    assert kinds == ["imageUpload", "imageMasking", "imageMasking", "imageMasking", "imageMasking"]
    assert api.requests[4].tasks()[0]["inputImage"].startswith("data:image/png;base64,")


def _empty_png() -> str:
    import base64

    from loopback import png_bytes

    return base64.b64encode(png_bytes(np.zeros((60, 40), np.uint8))).decode()
