"""Real Runware clients, unmodified, against a real `serve` on 127.0.0.1: the async SDK `runware-sdk` 1.8.0
over REST and WebSocket, the older `runware` 0.5.24 (WebSocket, in its own process), a raw WebSocket
client for the framing, and the fields ComfyUI's Runware nodes send. Every mask equals the command
line's for the same task."""

import asyncio
import base64
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from loopback import SERVICE_KEY, Service, png_bytes
from photos import ASTRONAUT
from PIL import Image

from maskmargin.cli import main

runware = pytest.importorskip("runware", reason="runware-sdk 1.8.0 is in requirements-dev.txt")
if not hasattr(runware, "RunwareError"):  # the older SDK, also named `runware`, on the path by mistake
    pytest.skip("`runware` is not runware-sdk 1.8.0", allow_module_level=True)
from runware import Runware, RunwareError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OLD_SDK = ROOT / ".venv" / "runware-0.5"
PNG = png_bytes(ASTRONAUT)
URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
MODEL = "runware:35@6"  # mediapipe_face_full: one face on the astronaut


@pytest.fixture(scope="module")
def svc():
    s = Service(api_key=SERVICE_KEY)
    yield s
    s.close()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def mask_bytes(result: dict) -> bytes:
    if "maskImageBase64Data" in result:
        return base64.b64decode(result["maskImageBase64Data"])
    if "maskImageDataURI" in result:
        return base64.b64decode(result["maskImageDataURI"].partition(",")[2])
    return httpx.get(result["maskImageURL"]).content


def cli_answer(tmp_path: Path, tasks: list[dict], capsys) -> dict:
    """What `python -m maskmargin run` prints for flat tasks on the astronaut file."""
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(PNG)
    flat = [{"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": str(photo)} | t for t in tasks]
    (tmp_path / "tasks.json").write_text(json.dumps(flat))
    capsys.readouterr()
    code = main(["run", str(tmp_path / "tasks.json"), "--output-dir", str(tmp_path / "cli")])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0, answer
    return answer


def cli_mask(tmp_path: Path, capsys, **fields) -> tuple[bytes, list]:
    (result,) = cli_answer(tmp_path, [{"model": MODEL, "outputType": "base64Data"} | fields], capsys)["data"]
    return base64.b64decode(result["maskImageBase64Data"]), result["detections"]


def sdk(svc: Service, transport: str, key: str = SERVICE_KEY) -> Runware:
    where = {"http_base_url": svc.url} if transport == "rest" else {"ws_base_url": svc.ws_url}
    return Runware(api_key=key, transport=transport, max_retries=0, **where)


def run_sdk(svc: Service, transport: str, *tasks: dict, key: str = SERVICE_KEY) -> list[list[dict]]:
    async def go() -> list[list[dict]]:
        async with sdk(svc, transport, key) as client:
            return [await client.run(t) for t in tasks]

    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["rest", "websocket"])
def test_the_async_sdk_gets_the_clis_masks_in_every_format_and_delivery(svc, transport, tmp_path, capsys):
    cases = [  # (the SDK's typed form, the same task flat for the command line)
        ({"outputFormat": "PNG", "deliveryMethod": "sync"}, {"outputFormat": "PNG"}),
        (
            {"outputFormat": "JPG", "outputQuality": 40, "deliveryMethod": "async"},
            {"outputFormat": "JPG", "outputQuality": 40},
        ),
        (
            {"outputFormat": "WEBP", "outputQuality": 70, "deliveryMethod": "sync"},
            {"outputFormat": "WEBP", "outputQuality": 70},
        ),
    ]
    settings = {"confidence": 0.3, "maxDetections": 3, "maskPadding": 6, "maskBlur": 5}
    tasks = [
        {"taskType": "imageMasking", "model": MODEL, "inputs": {"image": URI}, "settings": settings}
        | {"outputType": "base64Data", "includeCost": True}
        | form
        for form, _ in cases
    ]
    answers = run_sdk(svc, transport, *tasks)
    for (result,), (_, flat) in zip(answers, cases):
        expected, boxes = cli_mask(tmp_path, capsys, **flat, **settings)
        assert mask_bytes(result) == expected, flat
        assert result["detections"] == boxes and len(boxes) == 1 and result["cost"] == 0
        assert pixels(expected).shape[:2] == (512, 512)


def test_quality_changes_jpg_and_webp_but_not_png(svc):
    sizes = {}
    for fmt in ("JPG", "WEBP", "PNG"):
        for quality in (25, 95):
            (result,) = svc.post(
                [
                    {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": URI, "model": MODEL}
                    | {"outputType": "base64Data", "outputFormat": fmt, "outputQuality": quality, "maskBlur": 12}
                ]
            ).json()["data"]
            sizes[fmt, quality] = len(mask_bytes(result))
    assert sizes["JPG", 25] < sizes["JPG", 95] and sizes["WEBP", 25] < sizes["WEBP", 95]
    assert sizes["PNG", 25] == sizes["PNG", 95]


@pytest.mark.parametrize("transport", ["rest", "websocket"])
def test_every_output_type_and_the_flat_form(svc, transport):
    base = {"taskType": "imageMasking", "model": MODEL, "deliveryMethod": "sync", "outputFormat": "PNG"}
    typed = [base | {"inputs": {"image": URI}, "outputType": kind} for kind in ("URL", "dataURI", "base64Data")]
    flat = base | {"inputImage": URI, "outputType": "URL", "maskPadding": 0, "maskBlur": 0}
    answers = [r for (r,) in run_sdk(svc, transport, *typed, flat)]
    masks = [pixels(mask_bytes(r)) for r in answers[:3]]
    assert all(np.array_equal(masks[0], m) for m in masks) and masks[0].max() == 255
    url_result = answers[0]
    assert url_result["imageURL"] == url_result["maskImageURL"], "ComfyUI's Runware nodes read imageURL"
    assert url_result["maskImageURL"].startswith(svc.url + "/images/") and "maskImageDataURI" in answers[1]
    assert pixels(mask_bytes(answers[3])).max() == 255 and not np.array_equal(pixels(mask_bytes(answers[3])), masks[0])


@pytest.mark.parametrize("transport", ["rest", "websocket"])
def test_upload_then_mask_by_uuid(svc, transport):
    async def go() -> tuple[dict, dict]:
        async with sdk(svc, transport) as client:
            (uploaded,) = await client.image_upload({"image": URI})
            (result,) = await client.run(
                {"taskType": "imageMasking", "model": MODEL, "inputs": {"image": uploaded["imageUUID"]}}
                | {"outputType": "base64Data", "deliveryMethod": "async"}
            )
            return uploaded, result

    uploaded, result = asyncio.run(go())
    assert result["inputImageUUID"] == uploaded["imageUUID"] and len(result["detections"]) == 1
    got = httpx.get(uploaded["imageURL"])
    assert got.status_code == 200 and got.content == PNG


@pytest.mark.parametrize("transport", ["rest", "websocket"])
def test_a_wrong_key_raises_the_sdks_auth_error(svc, transport):
    task = {"taskType": "imageMasking", "model": MODEL, "inputs": {"image": URI}, "deliveryMethod": "sync"}
    with pytest.raises(RunwareError) as err:
        run_sdk(svc, transport, task, key="wrong-" + SERVICE_KEY)
    assert err.value.code == "auth" and err.value.message == "the API key is not valid"
    assert SERVICE_KEY not in str(err.value)


def test_unknown_fields_are_named_to_the_sdk(svc):
    task = {"taskType": "imageMasking", "model": MODEL, "inputs": {"image": URI, "mask": URI}, "deliveryMethod": "sync"}
    with pytest.raises(RunwareError) as err:
        run_sdk(svc, "rest", task)
    assert err.value.parameter == "inputs.mask" and err.value.code == "validation"


def run_old_sdk(svc: Service, tmp_path: Path, job: dict, key: str = SERVICE_KEY) -> dict:
    if not (OLD_SDK / "runware").is_dir():
        pytest.skip(f"runware 0.5.24 is not installed in {OLD_SDK} (make venv installs it)")
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "runware_old_client.py"), str(OLD_SDK), svc.ws_url, key]
        + [str(tmp_path / "job.json")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_old_sdk_uploads_and_sends_raw_masking_tasks(svc, tmp_path, capsys):
    photo = tmp_path / "upload.png"
    photo.write_bytes(PNG)
    tasks = [
        {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": "$upload", "model": MODEL}
        | {"outputType": "base64Data", "outputFormat": "PNG", "maskPadding": 8},
        {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": URI, "model": "runware:35@15"}
        | {"outputType": "URL", "outputFormat": "JPEG", "outputQuality": 80},
    ]
    answer = run_old_sdk(svc, tmp_path, {"upload": str(photo), "tasks": tasks})
    uploaded = answer["upload"]
    assert httpx.get(uploaded["imageURL"]).content == PNG
    (face_frame,) = answer["frames"][tasks[0]["taskUUID"]]
    (eyes_frame,) = answer["frames"][tasks[1]["taskUUID"]]
    (face,), (eyes,) = face_frame["data"], eyes_frame["data"]
    assert face["inputImageUUID"] == uploaded["imageUUID"]
    expected, _ = cli_mask(tmp_path, capsys, outputFormat="PNG", maskPadding=8)
    assert mask_bytes(face) == expected
    expected, boxes = cli_mask(tmp_path, capsys, model="runware:35@15", outputFormat="JPG", outputQuality=80)
    assert mask_bytes(eyes) == expected and eyes["detections"] == boxes and len(boxes) == 1  # one box: both eyes


def test_the_old_sdk_with_a_wrong_key_raises_its_connection_error(svc, tmp_path):
    answer = run_old_sdk(svc, tmp_path, {"tasks": []}, key="wrong-" + SERVICE_KEY)
    assert answer == {"error": "ConnectionError: the API key is not valid"}


# --- the WebSocket framing, with a plain client --------------------------------------------------


async def ws_auth(svc: Service, session: str | None = None):
    ws = await websockets.connect(svc.ws_url, max_size=None)
    auth = {"taskType": "authentication", "apiKey": SERVICE_KEY} | (
        {"connectionSessionUUID": session} if session else {}
    )
    await ws.send(json.dumps([auth]))
    answer = json.loads(await ws.recv())
    return ws, answer


def test_websocket_authentication_ping_and_reconnect(svc):
    async def go() -> None:
        ws, answer = await ws_auth(svc)
        (auth,) = answer["data"]
        assert auth["taskType"] == "authentication" and uuid.UUID(auth["connectionSessionUUID"])
        # a slow masking task in flight, then a ping: the pong comes first
        task = {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": URI, "model": "runware:35@8"}
        await ws.send(json.dumps([task | {"outputType": "base64Data"}]))
        await ws.send(json.dumps([{"taskType": "ping", "ping": True}]))
        first = json.loads(await ws.recv())
        assert first == {"data": [{"taskType": "ping", "pong": True}]}, "the pong does not wait for the mask"
        second = json.loads(await ws.recv())
        assert second["data"][0]["taskUUID"] == task["taskUUID"] and second["data"][0]["detections"]
        await ws.close()
        ws, again = await ws_auth(svc, auth["connectionSessionUUID"])
        assert again["data"][0]["connectionSessionUUID"] == auth["connectionSessionUUID"]
        # several tasks in one frame: a frame per result, each keyed by its taskUUID, errors apart
        good, bad = (
            (task | {"taskUUID": str(uuid.uuid4()), "model": MODEL}),
            (task | {"taskUUID": str(uuid.uuid4()), "confidence": 2}),
        )
        await ws.send(json.dumps([good, bad]))
        frames = [json.loads(await ws.recv()) for _ in range(2)]
        assert frames[0]["data"][0]["taskUUID"] == good["taskUUID"]
        assert (
            frames[1]["errors"][0]["taskUUID"] == bad["taskUUID"]
            and frames[1]["errors"][0]["parameter"] == "confidence"
        )
        # async: an acknowledgement, then the result pushed when done (getResponse also has it)
        later = task | {"taskUUID": str(uuid.uuid4()), "model": MODEL, "deliveryMethod": "async"}
        await ws.send(json.dumps([later]))
        frames = [json.loads(await ws.recv())["data"][0] for _ in range(2)]
        assert sorted(f["status"] for f in frames) == ["processing", "success"]
        assert all(f["taskUUID"] == later["taskUUID"] for f in frames)
        (pushed,) = [f for f in frames if f["status"] == "success"]
        await ws.send(json.dumps([{"taskType": "getResponse", "taskUUID": later["taskUUID"]}]))
        polled = json.loads(await ws.recv())["data"][0]
        assert polled == pushed and len(pushed["detections"]) == 1
        await ws.close()

    asyncio.run(go())


def test_websocket_refusals_are_frames_in_the_api_shape(svc):
    async def go() -> None:
        ws = await websockets.connect(svc.ws_url)
        await ws.send(json.dumps([{"taskType": "ping", "ping": True}]))
        (error,) = json.loads(await ws.recv())["errors"]
        assert error["code"] == "missingApiKey" and error["taskType"] == "authentication"
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        ws = await websockets.connect(svc.ws_url)
        await ws.send(json.dumps([{"taskType": "authentication", "apiKey": "\ud800"}]))
        assert json.loads(await ws.recv())["errors"][0]["code"] == "invalidApiKey"
        ws, _ = await ws_auth(svc)
        await ws.send("[" * 100_000)
        assert json.loads(await ws.recv())["errors"][0]["message"] == "the request nests deeper than 32 levels"
        await ws.send("not json")
        assert json.loads(await ws.recv())["errors"][0]["code"] == "invalidJSON"
        # a frame far over aiohttp's default 4 MiB, under the body limit: read and answered
        big = {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "model": MODEL}
        await ws.send(json.dumps([big | {"inputImage": "data:image/png;base64," + "A" * (6 << 20)}]))
        (error,) = json.loads(await ws.recv())["errors"]
        assert error["taskUUID"] == big["taskUUID"] and error["parameter"] == "inputImage"
        await ws.close()

    asyncio.run(go())


def test_comfyui_runware_node_fields_over_rest(svc):
    """What ComfyUI's Runware nodes send: outputFormat JPEG, outputQuality; they read the mask from imageURL."""
    t = {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": URI, "model": MODEL}
    response = svc.post([t | {"outputType": "URL", "outputFormat": "JPEG", "outputQuality": 85}])
    (result,) = response.json()["data"]
    assert response.status_code == 200 and result["imageURL"].endswith(".jpg")
    got = httpx.get(result["imageURL"])
    assert got.headers["content-type"] == "image/jpeg" and pixels(got.content).shape == (512, 512)
    head = httpx.head(result["imageURL"])
    assert head.status_code == 200 and head.headers["content-length"] == str(len(got.content))
    assert httpx.get(svc.url.replace("/v1", "/health")).json() == {"status": "ok"}


def test_websockets_waiting_to_authenticate_are_capped(svc):
    """Each may send one frame up to the body limit before its key is known: at most 16 at once."""
    from maskmargin.service.server import MAX_UNAUTHENTICATED

    async def go() -> None:
        waiting = [await websockets.connect(svc.ws_url) for _ in range(MAX_UNAUTHENTICATED)]
        await asyncio.sleep(0.2)
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(svc.ws_url)
        assert err.value.response.status_code == 503
        assert json.loads(err.value.response.body)["errors"][0]["code"] == "serviceBusy"
        with_key = await websockets.connect(svc.ws_url, additional_headers={"Authorization": f"Bearer {SERVICE_KEY}"})
        await with_key.send(json.dumps([{"taskType": "ping", "ping": True}]))
        assert json.loads(await with_key.recv()) == {"data": [{"taskType": "ping", "pong": True}]}
        for ws in [*waiting, with_key]:
            await ws.close()
        ws, answer = await ws_auth(svc)  # the slots are free again
        assert answer["data"][0]["taskType"] == "authentication"
        await ws.close()

    asyncio.run(go())
