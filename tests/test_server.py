"""The self-hosted service over real loopback sockets: API answers, auth, limits, safe URLs, and the
client (RemoteDetector, `run --remote`) against it giving the same masks as local runs."""

import base64
import io
import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from loopback import SERVICE_KEY, Reply, ScriptedAPI, Service, png_bytes, reply
from photos import ASTRONAUT
from PIL import Image

from maskmargin.cli import main
from maskmargin.errors import UnsafeURL
from maskmargin.loader import load_detector
from maskmargin.pipeline import image_mask
from maskmargin.registry import find_model
from maskmargin.remote.client import RemoteClient
from maskmargin.remote.config import RemoteConfig
from maskmargin.remote.detector import RemoteDetector
from maskmargin.settings import MaskSettings
from maskmargin.url_safety import URLPolicy, checked_address, fetch

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT_URI = "data:image/png;base64," + base64.b64encode(png_bytes(ASTRONAUT)).decode()


def masking(**fields) -> dict:
    return {
        "taskType": "imageMasking",
        "taskUUID": str(uuid.uuid4()),
        "inputImage": ASTRONAUT_URI,
        "model": "mediapipe_face_full",
    } | fields


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.mark.parametrize("model", ["mediapipe_face_full", "eyes_mesh_mediapipe"])
@pytest.mark.parametrize("padding, blur", [(4, 4), (0, 0), (-2, 3), (12, 0)])
def test_remote_detector_gives_the_same_mask_as_local(service, model, padding, blur):
    pixels = np.stack([ASTRONAUT, ASTRONAUT[:, ::-1]])
    images = torch.from_numpy(pixels).float().div(255)
    settings = MaskSettings(0.25, 6, padding, blur)
    remote = image_mask(
        RemoteDetector(find_model(model), RemoteConfig(api_url=service.url, api_key=SERVICE_KEY)), images, settings
    )
    local = image_mask(load_detector(model), images, settings)
    assert torch.equal(remote.masks, local.masks)
    assert remote.to_api() == local.to_api() and len(local.to_api()[0]) >= 1
    assert remote.masks.shape == (2, 512, 512)


def test_run_remote_prints_what_the_local_run_prints(service, tmp_path, capsys, monkeypatch):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(ASTRONAUT).save(photo)
    tasks = [
        masking(
            inputImage=str(photo),
            outputFormat="PNG",
            outputType="base64Data",
            maskPadding=6,
            maskBlur=3,
            includeCost=True,
        ),
        masking(inputImage=str(photo), model="runware:35@15", outputType="URL", outputFormat="PNG"),
        masking(inputImage=str(photo), model="extra_mediapipe_hands"),
    ]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    monkeypatch.setenv("RUNWARE_API_URL", service.url)
    monkeypatch.setenv("RUNWARE_API_KEY", SERVICE_KEY)
    answers = {}
    for mode in ("local", "remote"):
        extra = ["--remote"] if mode == "remote" else []
        code = main(["run", str(tmp_path / "tasks.json"), "--output-dir", str(tmp_path / mode), *extra])
        out, err = capsys.readouterr()
        assert code == (1 if mode == "remote" else 0) and SERVICE_KEY not in out + err
        answers[mode] = json.loads(out)
    local, remote = answers["local"], answers["remote"]
    assert len(local["data"]) == 3 and len(remote["data"]) == 2, "extras exist only locally"
    assert [r["detections"] for r in remote["data"]] == [r["detections"] for r in local["data"][:2]]
    assert np.array_equal(
        decode(remote["data"][0]["maskImageBase64Data"]), decode(local["data"][0]["maskImageBase64Data"])
    )
    assert remote["data"][0]["cost"] == 0
    remote_file = Path(remote["data"][1]["maskImageURL"][len("file://") :])
    local_file = Path(local["data"][1]["maskImageURL"][len("file://") :])
    assert remote_file.parent == (tmp_path / "remote").resolve()
    assert np.array_equal(np.asarray(Image.open(remote_file)), np.asarray(Image.open(local_file)))
    (error,) = remote["errors"]
    assert error["parameter"] == "model" and error["taskUUID"] == tasks[2]["taskUUID"]
    assert "not offered by remote services" in error["message"]


def test_run_remote_with_a_wrong_key_reports_it_without_the_key(service, tmp_path, capsys, monkeypatch):
    (tmp_path / "tasks.json").write_text(json.dumps([masking()]))
    monkeypatch.setenv("RUNWARE_API_URL", service.url)
    monkeypatch.setenv("RUNWARE_API_KEY", "wrong-" + SERVICE_KEY)
    code = main(["run", str(tmp_path / "tasks.json"), "--remote"])
    out, err = capsys.readouterr()
    (error,) = json.loads(out)["errors"]
    assert code == 1 and error["code"] == "authenticationFailed" and error["parameter"] == "apiKey"
    assert "the API key is wrong or revoked" in error["message"]
    assert SERVICE_KEY not in out + err


def test_results_follow_the_api(service):
    t = masking(outputFormat="PNG", outputType="base64Data", includeCost=True, maskPadding=0, maskBlur=0)
    response = service.post([t])
    assert response.status_code == 200
    (result,) = response.json()["data"]
    assert set(result) == {
        "taskType",
        "taskUUID",
        "inputImageUUID",
        "detections",
        "maskImageUUID",
        "maskImageBase64Data",
        "cost",
    }
    assert result["taskUUID"] == t["taskUUID"] and result["cost"] == 0
    dets = load_detector("mediapipe_face_full").detect(ASTRONAUT, 0.25, 6)
    assert result["detections"] == [d.to_api() for d in dets]
    assert decode(result["maskImageBase64Data"]).shape == (512, 512)


def test_authentication_by_header_or_task(service):
    missing = service.post([masking()], key=None)
    assert missing.status_code == 401
    assert missing.json() == {
        "errors": [
            {
                "code": "missingApiKey",
                "parameter": "apiKey",
                "taskType": "authentication",
                "taskUUID": None,
                "message": "an API key is required: send 'Authorization: Bearer <key>' or a leading "
                "authentication task with apiKey",
            }
        ]
    }
    wrong = service.post([masking()], key="nope-" + SERVICE_KEY)
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["code"] == "invalidApiKey"
    assert SERVICE_KEY not in wrong.text
    t = masking(outputType="dataURI")
    ok = service.post([{"taskType": "authentication", "apiKey": SERVICE_KEY}, t], key=None)
    assert ok.status_code == 200
    auth, result = ok.json()["data"]
    assert auth["taskType"] == "authentication" and uuid.UUID(auth["connectionSessionUUID"])
    assert result["taskUUID"] == t["taskUUID"] and result["maskImageDataURI"].startswith("data:image/jpeg;base64,")
    bad = service.post([{"taskType": "authentication", "apiKey": "x"}, t], key=None)
    assert bad.status_code == 401 and bad.json()["errors"][0]["code"] == "invalidApiKey"


@pytest.mark.parametrize(
    "fields, parameter",
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"maxDetections": 0}, "maxDetections"),
        ({"maxDetections": 21}, "maxDetections"),
        ({"maskBlur": -1}, "maskBlur"),
        ({"maskPadding": 2.5}, "maskPadding"),
        ({"outputFormat": "GIF"}, "outputFormat"),
        ({"outputType": "file"}, "outputType"),
        ({"includeCost": "yes"}, "includeCost"),
        ({"uploadEndpoint": "ftp://x"}, "uploadEndpoint"),
        ({"taskUUID": "not-a-uuid"}, "taskUUID"),
        ({"model": "/etc/passwd.pt"}, "model"),
        ({"model": "face_yolov8n.pt"}, "model"),
        ({"inputImage": "/etc/hostname"}, "inputImage"),
        ({"inputImage": str(uuid.uuid4())}, "inputImage"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_out_of_range_fields_are_400_naming_them(service, fields, parameter):
    t = masking(**fields)
    response = service.post([t])
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["parameter"] == parameter and error["taskType"] == "imageMasking"
    assert error["taskUUID"] == t["taskUUID"] and parameter in error["message"] or parameter == "inputImage"
    assert response.json()["data"] == []


def test_a_request_must_be_a_json_array_of_tasks(service):
    assert service.post(b"{not json").json()["errors"][0]["code"] == "invalidJSON"
    response = service.post({"taskType": "imageMasking"})
    assert response.status_code == 400 and response.json()["errors"][0]["parameter"] == "tasks"
    response = service.post([{"taskType": "imageInference", "taskUUID": str(uuid.uuid4())}])
    assert response.status_code == 400 and response.json()["errors"][0]["parameter"] == "taskType"


def test_upload_then_reuse_by_uuid_and_partial_success(service):
    up = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": ASTRONAUT_URI}
    (uploaded,) = service.post([up]).json()["data"]
    refused = service.post([up | {"taskUUID": str(uuid.uuid4()), "image": "http://10.0.0.1/a.png"}])
    (error,) = refused.json()["errors"]
    assert refused.status_code == 400 and error["parameter"] == "image" and error["code"] == "unsafeURL"
    assert error["message"].startswith("image points at a private")
    image_uuid = uploaded["imageUUID"]
    good, bad = masking(inputImage=image_uuid, outputType="base64Data"), masking(confidence=2)
    response = service.post([good, bad])
    assert response.status_code == 400, "any failed task makes the answer 400; the others still come back"
    (result,) = response.json()["data"]
    assert result["inputImageUUID"] == image_uuid and result["taskUUID"] == good["taskUUID"]
    assert response.json()["errors"][0]["taskUUID"] == bad["taskUUID"]


def test_url_output_is_served_and_upload_endpoint_gets_the_mask():
    service = Service(
        api_key=SERVICE_KEY, url_policy=URLPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    )
    try:
        with ScriptedAPI([reply(200, b"")]) as bucket:
            t = masking(outputType="URL", outputFormat="PNG", uploadEndpoint=bucket.url + "/bucket/mask.png?sig=1")
            response = service.post([t])
            assert response.status_code == 200
            url = response.json()["data"][0]["maskImageURL"]
            assert url.startswith(service.url + "/images/") and url.endswith(".png")
            got = httpx.get(url)
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            (put,) = bucket.requests
            assert put.method == "PUT" and put.path == "/bucket/mask.png?sig=1" and put.body == got.content
            assert put.headers["Content-Type"] == "image/png"
            assert np.asarray(Image.open(io.BytesIO(got.content))).shape == (512, 512)
        assert httpx.get(service.url + f"/images/{uuid.uuid4()}.png").status_code == 404
    finally:
        service.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.png",
        "http://localhost:9/a.png",
        "http://[::1]:9/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/a.png",
        "http://192.168.1.1/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://0.0.0.0/a.png",
    ],
)
def test_private_urls_are_refused(service, url):
    t = masking(inputImage=url)
    response = service.post([t])
    (error,) = response.json()["errors"]
    assert response.status_code == 400 and error["code"] == "unsafeURL" and error["parameter"] == "inputImage"
    assert "--allow-private-urls" in error["message"]
    put = masking(uploadEndpoint=url.replace("a.png", "put"))
    (error,) = service.post([put]).json()["errors"]
    assert error["code"] == "unsafeURL" and error["parameter"] == "uploadEndpoint"


def test_url_safety_checks_every_address_and_redirect():
    policy = URLPolicy()
    assert not any(
        policy.allows(ipaddress.ip_address(a))
        for a in (
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "240.0.0.1",
        )
    )
    assert all(policy.allows(ipaddress.ip_address(a)) for a in ("8.8.8.8", "1.1.1.1", "2606:4700::1111"))
    assert URLPolicy(allow_private=True).allows(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(UnsafeURL):
        checked_address("file:///etc/passwd", policy, "inputImage")
    loopback = URLPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), max_bytes=400_000)
    png = png_bytes(ASTRONAUT[:64, :64])

    def route(request):
        if request.path == "/img.png":
            return Reply(200, png, {"Content-Type": "image/png"})
        if request.path == "/to-img":
            return Reply(302, b"", {"Location": "/img.png"})
        if request.path == "/to-metadata":
            return Reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data"})
        if request.path == "/loop":
            return Reply(302, b"", {"Location": "/loop"})
        return Reply(200, b"x" * 500_000)

    with ScriptedAPI([route]) as site:
        assert fetch(site.url + "/img.png", loopback) == png
        assert fetch(site.url + "/to-img", loopback) == png
        with pytest.raises(UnsafeURL) as err:
            fetch(site.url + "/to-metadata", loopback)
        assert "169.254.169.254" in err.value.message
        with pytest.raises(Exception, match="redirects more than 5 times"):
            fetch(site.url + "/loop", loopback)
        with pytest.raises(Exception, match="larger than 0 MiB"):
            fetch(site.url + "/big", loopback)
        with pytest.raises(UnsafeURL):
            fetch(site.url + "/img.png", URLPolicy())
        assert [r.headers["Host"] for r in site.requests][:1] == [site.url[len("http://") :]]


def test_limits_on_body_pixels_and_tasks():
    service = Service(api_key=SERVICE_KEY, max_body_bytes=200_000, max_pixels=60_000, max_tasks=2)
    try:
        big = service.post([masking()])
        assert big.status_code == 413 and big.json()["errors"][0]["code"] == "payloadTooLarge"
        small = "data:image/png;base64," + base64.b64encode(png_bytes(ASTRONAUT[::2, ::2])).decode()  # 256x256
        pixels = service.post([masking(inputImage=small)])
        (error,) = pixels.json()["errors"]
        assert pixels.status_code == 400 and error["parameter"] == "inputImage"
        assert error["message"] == "inputImage is 256x256, more than this service's limit of 60000 pixels"
        tiny = "data:image/png;base64," + base64.b64encode(png_bytes(ASTRONAUT[::8, ::8])).decode()
        many = service.post([masking(inputImage=tiny)] * 3)
        assert many.status_code == 400 and many.json()["errors"][0]["message"] == "at most 2 tasks per request, got 3"
    finally:
        service.close()


def test_a_busy_service_answers_503_and_the_client_waits_and_retries():
    service = Service(api_key=SERVICE_KEY, max_concurrency=1, queue_timeout=0.1)
    try:
        service.service.slots.acquire()  # someone else's long request
        busy = service.post([masking()])
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert busy.json()["errors"][0]["code"] == "serviceBusy"
        with RemoteClient(RemoteConfig(api_url=service.url, api_key=SERVICE_KEY, retries=5)) as client:

            def free_the_slot_once_refused() -> None:  # no timing race: wait for the client's first 503
                deadline = time.monotonic() + 60
                while not client.retry_log and time.monotonic() < deadline:
                    time.sleep(0.01)
                service.service.slots.release()

            threading.Thread(target=free_the_slot_once_refused, daemon=True).start()
            (found,) = client.mask_images([ASTRONAUT], "mediapipe_face_full", MaskSettings(0.25, 6, 0, 0))
        assert client.retry_log[0] == ("HTTP 503", 1.0) and len(found.boxes) == 1
    finally:
        service.close()


def test_serve_command_starts_a_service(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(f"# team keys\nalice-key-1  # alice\n{SERVICE_KEY}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASKMARGIN_MODELS_DIR=str(ROOT / "models"))  # MediaPipe files
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskmargin", "serve", "--port", "0", "--api-key-file", str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("MaskMargin Image Masking API on http://127.0.0.1:") and "(key required)" in line
        url = line.split()[5]
        assert httpx.get(url.replace("/v1", "/health")).json() == {"status": "ok"}
        assert httpx.post(url, json=[masking()]).status_code == 401
        ok = httpx.post(
            url, json=[masking(outputType="base64Data")], headers={"Authorization": f"Bearer {SERVICE_KEY}"}, timeout=60
        )
        assert ok.status_code == 200 and len(ok.json()["data"][0]["detections"]) == 1
        alice = httpx.post(
            url, json=[masking(outputType="base64Data")], headers={"Authorization": "Bearer alice-key-1"}, timeout=60
        )
        assert alice.status_code == 200
        assert httpx.post(url, json=[masking()], headers={"Authorization": "Bearer # alice"}).status_code == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert SERVICE_KEY not in line + out and "alice-key-1" not in line + out


def test_serve_usage_errors_exit_2(tmp_path, capsys):
    assert main(["serve", "--api-key-file", str(tmp_path / "missing")]) == 2
    assert main(["serve", "--max-concurrency", "0"]) == 2
    assert main(["serve", "--allow-network", "not-a-net"]) == 2
    err = capsys.readouterr().err
    assert "cannot read --api-key-file" in err and "--allow-network" in err


def test_connections_beyond_the_cap_get_503_and_slow_clients_time_out():
    import socket
    import time

    service = Service(api_key=SERVICE_KEY, max_connections=1, request_timeout=1.0, idle_timeout=1.0)
    try:
        port = service.port
        idle = socket.create_connection(("127.0.0.1", port))  # connected, sends nothing: holds the only slot
        time.sleep(0.2)
        busy = service.post([masking()])
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert busy.json()["errors"][0]["code"] == "serviceBusy"
        idle.settimeout(10)
        assert idle.recv(1) == b"", "the silent connection is dropped after the idle timeout"
        idle.close()
        for _ in range(50):  # the slot frees when the handler thread ends
            ok = service.post([masking(outputType="base64Data")])
            if ok.status_code != 503:
                break
            time.sleep(0.1)
        assert ok.status_code == 200
    finally:
        service.close()


def test_run_remote_with_a_bad_setting_is_a_usage_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "tasks.json").write_text(json.dumps([masking()]))
    monkeypatch.setenv("MASKMARGIN_TIMEOUT", "soon")
    assert main(["run", str(tmp_path / "tasks.json"), "--remote"]) == 2
    assert capsys.readouterr().err == "error: MASKMARGIN_TIMEOUT must be a number >= 0.001, got 'soon'\n"
