"""Verified downloads against a real HTTP server on 127.0.0.1."""

import dataclasses
import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no DNS probes, no downloads

import pytest
import torch

from maskmargin.download import BASE_ENV, download_model
from maskmargin.errors import ModelNotAvailable, UnsafeModelFile
from maskmargin.registry import find_model

SPEC = find_model("face_yolov8n")


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("hub") / "det.pt"
    YOLO("yolov8n.yaml").save(path)
    return path.read_bytes()


class Hub(BaseHTTPRequestHandler):
    """Serves /face_yolov8n.pt like Hugging Face: HEAD carries X-Linked-Etag on a redirect."""

    def _answer(self, with_body):
        server = self.server
        server.requests.append((self.command, self.path))
        if self.path == "/face_yolov8n.pt" and server.redirect:
            self.send_response(302)
            self.send_header("Location", "/cdn/face_yolov8n.pt")
            self.send_header("X-Linked-Etag", f'"{server.published}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in ("/face_yolov8n.pt", "/cdn/face_yolov8n.pt") or server.body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(server.body)))
        if not server.redirect and server.published:
            self.send_header("X-Linked-Etag", f'"{server.published}"')
        self.end_headers()
        if with_body:
            self.wfile.write(server.body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def hub(weights, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    server.body, server.published = weights, hashlib.sha256(weights).hexdigest()
    server.redirect, server.requests = True, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(BASE_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield server
    server.shutdown()
    server.server_close()


def test_download_verifies_and_reports_progress(hub, tmp_path):
    folder = tmp_path / "models" / "ultralytics" / "bbox"
    calls = []
    path = download_model(SPEC, folder, progress=lambda done, total: calls.append((done, total)))
    assert path == folder / "face_yolov8n.pt"
    assert path.read_bytes() == hub.body
    assert calls and calls[-1] == (len(hub.body), len(hub.body))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert sorted(p.name for p in folder.iterdir()) == ["face_yolov8n.pt"]

    hub.requests.clear()  # already there with the published hash: nothing is fetched again
    assert download_model(SPEC, folder) == path
    assert [m for m, _ in hub.requests] == ["HEAD", "HEAD"]


def test_etag_without_redirect_is_accepted(hub, tmp_path):
    hub.redirect = False
    assert download_model(SPEC, tmp_path).read_bytes() == hub.body


def test_hash_mismatch_leaves_nothing(hub, tmp_path):
    hub.published = "ab" * 32
    with pytest.raises(ModelNotAvailable) as err:
        download_model(SPEC, tmp_path)
    message = str(err.value)
    assert "ab" * 32 in message and hashlib.sha256(hub.body).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_pinned_hash_must_match_the_published_one(hub, tmp_path):
    pinned = dataclasses.replace(SPEC, sha256="cd" * 32)
    with pytest.raises(ModelNotAvailable, match="cd" * 32):
        download_model(pinned, tmp_path)
    assert not any(m == "GET" for m, _ in hub.requests)


def test_unpublished_hash_is_refused(hub, tmp_path):
    hub.published = None
    with pytest.raises(ModelNotAvailable, match="cannot be verified"):
        download_model(SPEC, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_on_server(hub, tmp_path):
    hub.body, hub.redirect = None, False
    with pytest.raises(ModelNotAvailable, match="404"):
        download_model(SPEC, tmp_path)


def test_unsafe_download_is_deleted(hub, tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, ("true",)

    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil)
    hub.body = evil.read_bytes()
    hub.published = hashlib.sha256(hub.body).hexdigest()
    folder = tmp_path / "bbox"
    with pytest.raises(UnsafeModelFile, match="deleted"):
        download_model(SPEC, folder)
    assert list(folder.iterdir()) == []


def test_offline_names_folder_and_url(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(BASE_ENV, f"http://127.0.0.1:{port}/files")
    folder = tmp_path / "bbox"
    with pytest.raises(ModelNotAvailable) as err:
        download_model(SPEC, folder)
    message = str(err.value)
    assert str(folder) in message and f"http://127.0.0.1:{port}/files/face_yolov8n.pt" in message
    assert "unreachable" in message
    assert not folder.exists() or list(folder.iterdir()) == []


def test_only_registry_models_download(tmp_path):
    from maskmargin.registry import spec_for_file

    with pytest.raises(ModelNotAvailable, match="no download"):
        download_model(spec_for_file(tmp_path / "bbox" / "my_faces.pt"), tmp_path)
    with pytest.raises(ModelNotAvailable, match="no weights file"):
        download_model(find_model("mediapipe_face_full"), tmp_path)


def test_default_url_is_the_registry_one(monkeypatch):
    from maskmargin.download import download_url

    monkeypatch.delenv(BASE_ENV, raising=False)
    assert download_url(SPEC) == "https://huggingface.co/Bingsu/adetailer/resolve/main/face_yolov8n.pt"
