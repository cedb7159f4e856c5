"""Detector Loader set to remote inside a real ComfyUI (skipped unless COMFYUI_DIR is set).

A self-hosted service runs in this test process on a loopback port; the key and URL are saved through
the pack's route, ComfyUI keeps them in its system user folder, and the remote MASK must equal the
local one. The key must not leak into the workflow, history, PNG metadata or the log.
"""

import json
import stat

import numpy as np
import pytest
from comfy_harness import ComfyError
from loopback import SERVICE_KEY
from photos import ASTRONAUT
from PIL import Image

pytestmark = pytest.mark.comfyui


def graph(where: str, image_name: str, model: str = "eyes_mesh_mediapipe") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
        "3": {"class_type": "MaskMarginDetectorLoader", "inputs": {"model": model, "where": where}},
        "4": {
            "class_type": "MaskMarginImageMask",
            "inputs": {
                "image": ["2", 0],
                "detector": ["3", 0],
                "confidence": 0.25,
                "max_detections": 6,
                "mask_padding": 3,
                "mask_blur": 5,
            },
        },
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"mm_{where}"}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["4", 2]}},
    }


def masks(comfy, history):
    entries = history["outputs"]["6"]["images"]
    return [comfy.output_dir / e.get("subfolder", "") / e["filename"] for e in entries]


def test_remote_loader_gives_the_same_mask_as_local_and_keeps_the_key_server_side(comfy, service):
    Image.fromarray(ASTRONAUT).save(comfy.input_dir / "astronaut_remote.png")
    status = comfy.post("/maskmargin/api_key", {"apiKey": SERVICE_KEY, "apiUrl": service.url})
    assert status == {"apiUrl": service.url, "apiUrlSource": "saved", "keySet": True, "keySource": "saved"}
    assert comfy.get("/maskmargin/api_key") == status
    saved = comfy.base_dir / "user" / "__maskmargin" / "remote.json"
    assert json.loads(saved.read_text()) == {"apiKey": SERVICE_KEY, "apiUrl": service.url}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    remote = comfy.run(graph("remote", "astronaut_remote.png"))
    local = comfy.run(graph("local", "astronaut_remote.png"))
    remote_files, local_files = masks(comfy, remote), masks(comfy, local)
    assert len(remote_files) == 2
    for r, loc in zip(remote_files, local_files):
        rm, lm = np.asarray(Image.open(r)), np.asarray(Image.open(loc))
        assert np.array_equal(rm, lm) and rm.max() == 255
    assert remote["outputs"]["8"]["text"] == local["outputs"]["8"]["text"]
    boxes = json.loads(remote["outputs"]["8"]["text"][0])
    assert len(boxes) == 2 and len(boxes[0]) >= 1

    # the key is nowhere a user could share: workflow/prompt, history, PNG metadata, log
    assert SERVICE_KEY not in json.dumps(remote)
    for path in remote_files:
        assert SERVICE_KEY not in json.dumps(Image.open(path).info)
    assert SERVICE_KEY not in comfy.log_text()


def test_a_wrong_key_is_reported_without_the_key(comfy, service):
    Image.fromarray(ASTRONAUT).save(comfy.input_dir / "astronaut_remote.png")
    comfy.post("/maskmargin/api_key", {"apiKey": "not-" + SERVICE_KEY, "apiUrl": service.url})
    try:
        with pytest.raises(ComfyError) as err:
            comfy.run(graph("remote", "astronaut_remote.png", model="mediapipe_face_full"))
        text = str(err.value)
        assert "HTTP 401" in text and "the API key is wrong or revoked" in text
        assert "not-" + SERVICE_KEY not in text and "not-" + SERVICE_KEY not in comfy.log_text()
    finally:
        comfy.post("/maskmargin/api_key", {"apiKey": SERVICE_KEY})


def test_the_route_refuses_bad_input_and_clears(comfy, service):
    with pytest.raises(Exception) as err:
        comfy.post("/maskmargin/api_key", {"apiKey": "has spaces in it"})
    assert "400" in str(err.value)
    with pytest.raises(Exception, match="400"):
        comfy.post("/maskmargin/api_key", {"password": "x"})
    cleared = comfy._request("DELETE", "/maskmargin/api_key")
    assert cleared["keySet"] is False and cleared["apiUrlSource"] == "default"
    comfy.post("/maskmargin/api_key", {"apiKey": SERVICE_KEY, "apiUrl": service.url})


def test_cancelling_the_run_cancels_the_request_in_flight(comfy, service):
    import threading

    from loopback import DROP, ScriptedAPI, wait_for_hangup

    received, gone = threading.Event(), threading.Event()

    def hang(request):
        received.set()
        if wait_for_hangup(request, 60):
            gone.set()
        return DROP

    Image.fromarray(ASTRONAUT).save(comfy.input_dir / "astronaut_remote.png")
    with ScriptedAPI([hang]) as api:
        comfy.post("/maskmargin/api_key", {"apiKey": SERVICE_KEY, "apiUrl": api.url + "/v1"})
        try:
            g = graph("remote", "astronaut_remote.png", model="mediapipe_face_short")
            prompt_id = comfy.queue_prompt(g)
            assert received.wait(60), "the remote request was sent"
            comfy.post("/interrupt", {})
            assert gone.wait(30), "the service saw the request cancelled"
            with pytest.raises(ComfyError) as err:
                comfy.wait_for(prompt_id, timeout=60)
            assert "interrupt" in str(err.value).lower()
        finally:
            comfy.post("/maskmargin/api_key", {"apiKey": SERVICE_KEY, "apiUrl": service.url})
