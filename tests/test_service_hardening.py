"""Attacks on the service over real loopback sockets: every refusal an HTTP answer in the API's error
shape, keys checked before bodies are read, slow senders cut while real clients are served."""

import base64
import ipaddress
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from loopback import SERVICE_KEY, Reply, ScriptedAPI, Service, png_bytes
from photos import ASTRONAUT

from maskmargin.cli import main
from maskmargin.url_safety import URLPolicy

ROOT = Path(__file__).resolve().parents[1]
SMALL = ASTRONAUT[::4, ::4]  # 128 x 128: quick tasks
SMALL_URI = "data:image/png;base64," + base64.b64encode(png_bytes(SMALL)).decode()


def masking(**fields) -> dict:
    return {
        "taskType": "imageMasking",
        "taskUUID": str(uuid.uuid4()),
        "inputImage": SMALL_URI,
        "model": "mediapipe_face_full",
        "outputType": "base64Data",
    } | fields


def raw_request(port: int, data: bytes, timeout: float = 20) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole answer until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_answer(b"".join(chunks))


def parse_answer(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("Content-Length", len(body)))
    return status, {k.lower(): v for k, v in headers.items()}, body[:length]


def post_head(length: str, extra: str = "") -> bytes:
    return (
        f"POST /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def strict():
    """A service with short deadlines, for the slow-client attacks."""
    s = Service(api_key=SERVICE_KEY, request_timeout=4.0, idle_timeout=6.0)
    yield s
    s.close()


def test_duplicate_or_malformed_content_length_is_a_400_in_the_api_shape(service):
    body = json.dumps([masking()]).encode()
    for head in (
        post_head(str(len(body)), f"Content-Length: {len(body) + 5}\r\n"),  # two lengths: smuggling behind a proxy
        post_head(str(len(body)), f"Content-Length: {len(body)}\r\n"),  # even when equal
        post_head("\u0661\u0662"),  # Arabic-Indic digits
        post_head("12abc"),
        post_head("-1"),
    ):
        data = head.replace(b"\r\n\r\n", f"\r\nAuthorization: Bearer {SERVICE_KEY}\r\n\r\n".encode(), 1)
        status, headers, answer = raw_request(service.port, data + body)
        assert status in (400, 411), (head, status, answer)
        (error,) = json.loads(answer)["errors"]
        assert set(error) == {"code", "message", "parameter", "taskType", "taskUUID"}
        assert error["code"] in ("badRequest", "lengthRequired") and headers["connection"] == "close"


def test_nested_json_is_refused_not_a_crash(service):
    nested: list = []
    for _ in range(40):  # 40 levels: parses, but deeper than any task
        nested = [nested]
    for body in (b"[" * 200_000 + b"]" * 200_000, json.dumps([masking(extra=nested)]).encode()):
        response = service.post(body)
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "invalidJSON"
        assert response.json()["errors"][0]["message"] == "the request nests deeper than 32 levels"
    keyless = service.post(b"[" * 200_000, key=None)  # the key's prefix is parsed first: nested there too
    assert keyless.status_code == 401 and keyless.json()["errors"][0]["code"] == "missingApiKey"
    assert service.post([masking()]).status_code == 200, "the service is still up"


def test_lone_surrogates_and_odd_bytes_in_keys_are_a_401(service):
    body = '[{"taskType": "authentication", "apiKey": "\\ud800abc"}, {"taskType": "ping", "ping": true}]'
    response = service.post(body.encode(), key=None)
    assert response.status_code == 401 and response.json()["errors"][0]["code"] == "invalidApiKey"
    data = post_head("2").replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer \xff\xfe\xed\xa0\x80\r\n\r\n") + b"[]"
    status, _, answer = raw_request(service.port, data)
    assert status == 401 and json.loads(answer)["errors"][0]["code"] == "invalidApiKey"
    bad_utf8 = post_head("60") + b'[{"taskType": "authentication", "apiKey": "\xff\xfe"}]'.ljust(60)
    status, _, answer = raw_request(service.port, bad_utf8)
    assert status == 401 and json.loads(answer)["errors"][0]["code"] in ("invalidApiKey", "missingApiKey")


def test_a_body_over_the_limit_is_a_413_the_client_can_read():
    service = Service(api_key=SERVICE_KEY, max_body_bytes=100_000)
    try:
        response = service.post([masking(inputImage="data:image/png;base64," + "A" * 300_000)])
        assert response.status_code == 413, "an answer, not a broken pipe"
        assert response.json()["errors"][0] == {
            "code": "payloadTooLarge",
            "message": "the request body is larger than 0 MiB",
            "parameter": "tasks",
            "taskType": None,
            "taskUUID": None,
        }
    finally:
        service.close()


def test_slow_senders_are_cut_while_real_clients_are_served(strict):
    """64 sockets dribbling a request a byte at a time; a real request is answered meanwhile, the slow
    ones get a 408 once their request is overdue."""
    head = post_head("50")
    sockets = [socket.create_connection(("127.0.0.1", strict.port), timeout=10) for _ in range(64)]
    stop = threading.Event()

    def dribble() -> None:
        for i in range(len(head)):
            if stop.is_set():
                return
            for s in sockets:
                try:
                    s.send(head[i : i + 1])
                except OSError:
                    pass
            time.sleep(0.3)

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    try:
        time.sleep(0.5)
        ok = strict.post([masking()])
        assert ok.status_code == 200 and len(ok.json()["data"]) == 1
        readable, _, _ = select.select(sockets, [], [], 0)
        assert readable == [], "served while all 64 slow sockets were still open, none answered yet"
        answers = []
        for s in sockets:
            s.settimeout(10)
            raw = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                raw += chunk
            answers.append(parse_answer(raw))
        assert {status for status, _, _ in answers} == {408}
        assert json.loads(answers[0][2])["errors"][0]["code"] == "requestTimeout"
    finally:
        stop.set()
        for s in sockets:
            s.close()


def test_a_body_that_stalls_is_cut_at_the_whole_request_deadline(strict):
    body = json.dumps([masking()]).encode()
    data = post_head(str(len(body)), f"Authorization: Bearer {SERVICE_KEY}\r\n") + body[:100]
    status, _, answer = raw_request(strict.port, data)
    assert status == 408 and json.loads(answer)["errors"][0] == {
        "code": "requestTimeout",
        "message": "the request body did not arrive within 4 s",
        "parameter": None,
        "taskType": None,
        "taskUUID": None,
    }


def test_keyless_huge_bodies_are_refused_before_they_are_read(tmp_path):
    """Four keyless 47 MiB bodies sent at once: each answered 401 from its first bytes; the service's memory
    stays within 64 MiB of what it was (the bodies are read and dropped, never held)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASKMARGIN_SERVICE_KEY=SERVICE_KEY)
    cmd = [sys.executable, "-m", "maskmargin", "serve", "--port", "0", "--store-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = proc.stdout.readline().split()[5]
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert httpx.get(url.replace("/v1", "/health")).status_code == 200
        baseline = psutil.Process(proc.pid).memory_info().rss
        size = 47 * 1024 * 1024
        prefix = b'[{"taskType": "imageMasking", "taskUUID": "%s", "inputImage": "data:image/png;base64,' % (
            str(uuid.uuid4()).encode()
        )
        results: list = []
        peak = [baseline]

        def send_one() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                sock.sendall(post_head(str(size)) + prefix)
                chunk, sent = b"A" * (1 << 20), len(prefix)
                try:
                    while sent < size:
                        piece = chunk[: size - sent]
                        sock.sendall(piece)
                        sent += len(piece)
                except OSError:
                    pass
                raw = b""
                while True:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        break
                    if not data:
                        break
                    raw += data
                results.append((sent, parse_answer(raw)))

        def watch() -> None:
            while len(results) < 4:
                peak[0] = max(peak[0], psutil.Process(proc.pid).memory_info().rss)
                time.sleep(0.02)

        threads = [threading.Thread(target=send_one) for _ in range(4)]
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        watcher.join(10)
        assert len(results) == 4
        for sent, (status, _, body) in results:
            assert sent == size, "the client finished sending: no broken pipe"
            assert status == 401 and json.loads(body)["errors"][0]["code"] == "missingApiKey"
        assert peak[0] - baseline < 64 * 1024 * 1024, f"RSS grew by {(peak[0] - baseline) / 2**20:.0f} MiB"
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_wrong_bearer_key_is_refused_before_the_body_is_read(service):
    body = json.dumps([masking()]).encode()
    data = post_head(str(len(body) + 10_000_000), "Authorization: Bearer nope\r\n") + body
    status, headers, answer = raw_request(service.port, data, timeout=5)
    assert status == 401 and json.loads(answer)["errors"][0]["code"] == "invalidApiKey"


def test_an_empty_api_key_is_refused_at_start(capsys):
    assert main(["serve", "--api-key", ""]) == 2
    assert main(["serve", "--api-key", "  "]) == 2
    assert "error: --api-key is empty" in capsys.readouterr().err


def test_a_restart_keeps_an_uploaded_uuid_and_its_url(tmp_path):
    first = Service(api_key=SERVICE_KEY, store_dir=tmp_path)
    try:
        upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": SMALL_URI}
        (answer,) = first.post([upload]).json()["data"]
        before = first.post([masking(inputImage=answer["imageUUID"])]).json()["data"][0]
    finally:
        first.close()
    assert answer["imageURL"] == f"{first.url}/images/{answer['imageUUID']}.png"
    second = Service(api_key=SERVICE_KEY, store_dir=tmp_path)
    try:
        after = second.post([masking(inputImage=answer["imageUUID"])]).json()["data"][0]
        assert after["detections"] == before["detections"] and after["inputImageUUID"] == answer["imageUUID"]
        assert after["maskImageBase64Data"] == before["maskImageBase64Data"]
        url = answer["imageURL"].replace(first.url, second.url)
        got = httpx.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert got.content == png_bytes(SMALL)
        head = httpx.head(url)
        assert (
            head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(got.content)
        )
    finally:
        second.close()


def test_the_image_store_is_bounded_by_size(tmp_path):
    service = Service(api_key=SERVICE_KEY, store_dir=tmp_path, image_store_bytes=3 * len(png_bytes(SMALL)))
    try:
        uuids = []
        for _ in range(5):
            upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": SMALL_URI}
            uuids.append(service.post([upload]).json()["data"][0]["imageUUID"])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{u}.png" for u in uuids[2:])
        (error,) = service.post([masking(inputImage=uuids[0])]).json()["errors"]
        assert error["parameter"] == "inputImage" and "upload it first" in error["message"]
    finally:
        service.close()


def test_a_webhook_to_a_loopback_url_is_refused_without_allow_private_urls(service):
    t = masking(webhookURL="http://127.0.0.1:9/hook")
    response = service.post([t])
    (error,) = response.json()["errors"]
    assert response.status_code == 400 and error["code"] == "unsafeURL" and error["parameter"] == "webhookURL"
    assert error["taskUUID"] == t["taskUUID"] and "--allow-private-urls" in error["message"]


def test_a_webhook_gets_the_result_through_the_safe_fetcher():
    service = Service(
        api_key=SERVICE_KEY, url_policy=URLPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    )
    try:
        with ScriptedAPI([lambda request: Reply(200, b"")]) as hook:
            t = masking(webhookURL=hook.url + "/hook?sig=2", deliveryMethod="async")
            ack = service.post([t]).json()["data"][0]
            assert ack == {"taskType": "imageMasking", "taskUUID": t["taskUUID"], "status": "processing"}
            deadline = time.monotonic() + 60
            while not hook.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            (posted,) = hook.requests
            assert posted.method == "POST" and posted.path == "/hook?sig=2"
            assert posted.headers["Content-Type"] == "application/json"
            (result,) = json.loads(posted.body)["data"]
            got = service.post([{"taskType": "getResponse", "taskUUID": t["taskUUID"]}]).json()["data"][0]
            assert result == got and result["status"] == "success" and len(result["detections"]) == 1
    finally:
        service.close()


def test_get_response_is_only_for_the_key_that_sent_the_task():
    service = Service(api_keys=(SERVICE_KEY, "other-key-123"))
    try:
        t = masking(deliveryMethod="async")
        assert service.post([t], key=SERVICE_KEY).status_code == 200
        poll = [{"taskType": "getResponse", "taskUUID": t["taskUUID"]}]
        other = service.post(poll, key="other-key-123")
        assert other.status_code == 400 and other.json()["errors"][0]["code"] == "taskNotFound"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            item = service.post(poll, key=SERVICE_KEY).json()["data"][0]
            if item["status"] == "success":
                break
            assert item == {"taskType": "imageMasking", "taskUUID": t["taskUUID"], "status": "processing"}
            time.sleep(0.05)
        assert item["status"] == "success" and np.asarray(item["detections"]).size
    finally:
        service.close()


def test_unknown_routes_and_models_answer_in_the_api_shape(service):
    response = httpx.get(service.url.replace("/v1", "/nothing"))
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "notFound"
    (error,) = service.post([masking(model="face_yolov9")]).json()["errors"]
    assert error["parameter"] == "model" and "face_yolov8n (runware:35@1)" in error["message"]
    assert "nose_mesh_mediapipe (runware:35@13)" in error["message"]
    (error,) = service.post([masking(colour="red")]).json()["errors"]
    assert error["parameter"] == "colour" and error["message"].startswith("unknown field 'colour' for imageMasking")


def test_bounded_stores_forget_by_age_and_size():
    from maskmargin.service.stores import BoundedStore

    store = BoundedStore(max_bytes=10)
    store.put("a", b"12345", ttl=0.05)
    store.put("b", b"12345")
    assert store.get("a") == b"12345"
    time.sleep(0.1)
    assert store.get("a") is None and store.get("b") == b"12345"
    store.put("c", b"1234567")
    assert store.get("b") is None and store.get("c") == b"1234567" and len(store) == 1


def read_answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One whole answer from a socket (headers and Content-Length bytes), without waiting for a close."""
    raw = b""
    while True:
        head, sep, body = raw.partition(b"\r\n\r\n")
        if sep and len(body) >= int(parse_answer(raw)[1].get("content-length", 0)):
            return parse_answer(raw)
        chunk = sock.recv(65536)
        if not chunk:
            return parse_answer(raw)
        raw += chunk


def test_expect_100_continue_is_answered_and_a_refusal_comes_before_the_body(service):
    body = json.dumps([masking()]).encode()
    head = post_head(str(len(body)), f"Authorization: Bearer {SERVICE_KEY}\r\nExpect: 100-continue\r\n")
    with socket.create_connection(("127.0.0.1", service.port), timeout=20) as sock:
        sock.sendall(head)
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_answer(sock)
    assert status == 200 and len(json.loads(answer)["data"][0]["detections"]) == 1
    wrong = post_head(str(len(body)), "Authorization: Bearer nope\r\nExpect: 100-continue\r\n")
    with socket.create_connection(("127.0.0.1", service.port), timeout=20) as sock:
        sock.sendall(wrong)  # no body follows: the client waits for 100 Continue, which never comes
        status, headers, answer = read_answer(sock)
    assert status == 401 and json.loads(answer)["errors"][0]["code"] == "invalidApiKey"
    assert headers["connection"] == "close"


def test_queued_async_tasks_are_bounded(tmp_path):
    from maskmargin.service.core import MaskingService, ServiceConfig

    core = MaskingService(ServiceConfig(api_key=SERVICE_KEY, max_concurrency=1, max_tasks=1, store_dir=tmp_path))
    hold = threading.Event()
    core.background.submit(hold.wait, 60)  # its one worker is busy: accepted async tasks queue
    try:
        first, second = masking(deliveryMethod="async"), masking(deliveryMethod="async")
        status, answer, _ = core.handle(json.dumps([first]), f"Bearer {SERVICE_KEY}", "http://x")
        assert status == 200 and answer["data"][0]["status"] == "processing"
        status, answer, _ = core.handle(json.dumps([second]), f"Bearer {SERVICE_KEY}", "http://x")
        (error,) = answer["errors"]
        assert status == 400 and error["code"] == "serviceBusy" and error["taskUUID"] == second["taskUUID"]
        hold.set()
        poll = json.dumps([{"taskType": "getResponse", "taskUUID": first["taskUUID"]}])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            item = core.handle(poll, f"Bearer {SERVICE_KEY}", "http://x")[1]["data"][0]
            if item["status"] == "success":
                break
            time.sleep(0.05)
        assert item["status"] == "success" and len(item["detections"]) == 1
    finally:
        hold.set()
        core.close()


def test_uploaded_images_expire_by_age(tmp_path):
    service = Service(api_key=SERVICE_KEY, store_dir=tmp_path, image_store_days=0.5 / 86400)  # half a second
    try:
        upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": SMALL_URI}
        (answer,) = service.post([upload]).json()["data"]
        assert service.post([masking(inputImage=answer["imageUUID"])]).status_code == 200
        time.sleep(1.0)
        (error,) = service.post([masking(inputImage=answer["imageUUID"])]).json()["errors"]
        assert error["parameter"] == "inputImage" and "upload it first" in error["message"]
        assert httpx.get(answer["imageURL"]).status_code == 404
        assert not any(p.name.startswith(answer["imageUUID"]) for p in tmp_path.iterdir()), "the file is gone"
    finally:
        service.close()
