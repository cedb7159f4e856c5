"""The pack in ComfyUI's real frontend, in a real browser (skipped, with the reason, without one).

Needs COMFYUI_DIR (see tests/README.md), Debian's `chromium` on PATH, `node`, and playwright-core in
tests/browser/node_modules (`npm --prefix tests/browser ci`; nothing downloads a browser). One browser
session (tests/browser/driver.mjs) loads every example workflow, runs anonymize_faces with the Run button,
opens the model picker and saves and clears an API key in Settings; the tests below check what it saw.
Screenshots of each step are kept in pytest's temporary folder (browser0/), named in the failure messages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from detailer_fixtures import video_file
from photos import ASTRONAUT
from PIL import Image
from workflow_api import to_api

pytestmark = pytest.mark.comfyui

HERE = Path(__file__).resolve().parent
BROWSER_DIR = HERE / "browser"
WORKFLOWS = sorted((HERE.parent / "example_workflows").glob("*.json"))
RUN = "anonymize_faces"
INPUT = (
    "browser_astronaut.png"  # not example.png: other tests run the same graph, and ComfyUI would reuse their results
)
KEY = "mm-browser-test-key-7d41c2"  # a throwaway key: saved through Settings, then cleared


def browser_tools() -> tuple[str, str]:
    """(chromium, node) or a skip naming what is missing."""
    chromium = shutil.which("chromium")
    node = shutil.which("node")
    if chromium is None:
        pytest.skip("chromium not on PATH (Debian: apt-get install -y chromium)")
    if node is None:
        pytest.skip("node not on PATH")
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.skip("playwright-core not installed: npm --prefix tests/browser ci")
    return chromium, node


@pytest.fixture(scope="session")
def browser():
    """(chromium, node); session-scoped like `comfy` and listed first, so a missing browser skips before
    ComfyUI starts."""
    return browser_tools()


@pytest.fixture(scope="module")
def seen(browser, comfy, tmp_path_factory):
    """Run the browser once; returns the driver's report (see tests/browser/driver.mjs)."""
    chromium, node = browser

    Image.fromarray(ASTRONAUT).save(comfy.input_dir / INPUT)
    Image.fromarray(ASTRONAUT).save(comfy.input_dir / "example.png")  # what the examples load (thumbnails)
    small = np.asarray(Image.fromarray(ASTRONAUT).resize((320, 320)))
    video_file(comfy.input_dir / "input.mp4", [small] * 4)  # what the video example's Load Video loads
    workflows = {p.stem: json.loads(p.read_text()) for p in WORKFLOWS}
    for item in workflows[RUN]["nodes"]:
        if item["type"] == "LoadImage":
            item["widgets_values"][0] = INPUT
    out = tmp_path_factory.mktemp("browser")
    job = out / "job.json"
    probe = json.loads(json.dumps(workflows[RUN]))
    probe["nodes"][0]["type"] = "NoSuchNodeType"
    job.write_text(
        json.dumps(
            {
                "url": comfy.url,
                "out": str(out),
                "chromium": chromium,
                "workflows": workflows,
                "run": RUN,
                "apiKey": KEY,
                "probe": probe,
            }
        )
    )
    done = subprocess.run(
        [node, str(BROWSER_DIR / "driver.mjs"), str(job)], cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"driver failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    if report.get("fatal"):
        pytest.fail(f"driver failed: {report['fatal']}\nscreenshots: {out}\n{comfy.log_tail(30)}")
    return report


def ours(entry: dict) -> bool:
    """Logged by, or thrown through, the pack's extension (the frontend's own messages may name our nodes:
    with a missing node it asks api.comfy.org about every node type, which the page's CSP blocks)."""
    return "/extensions/MaskMargin/" in f"{entry.get('url', '')} {entry.get('stack', '')}"


def test_missing_node_checks_see_an_unknown_node(seen):
    assert seen["probe"]["missing"] and seen["probe"]["missing"][0].endswith(":NoSuchNodeType")
    assert any("NoSuchNodeType" in text for text in seen["probe"]["dialogs"]), seen["probe"]["dialogs"]


@pytest.mark.parametrize("name", [p.stem for p in WORKFLOWS])
def test_example_workflow_loads_in_the_frontend(seen, name):
    loaded = seen["workflows"][name]
    assert loaded["nodes"] > 0
    assert loaded["missing"] == [], (
        f"node types the frontend does not know: {loaded['missing']} ({loaded['screenshot']})"
    )
    assert not loaded["dialogs"], f"a dialog opened on load: {loaded['dialogs']} ({loaded['screenshot']})"
    assert loaded["errors"] == [], f"console errors while loading {name}: {loaded['errors']}"
    assert Path(loaded["screenshot"]).is_file()


def test_no_errors_from_the_extension(seen):
    mine = [e for e in seen["console"] if ours(e)] + [e for e in seen["pageErrors"] if ours(e)]
    assert mine == [], mine
    assert seen["pageErrors"] == [], "uncaught errors on the page"


def test_anonymize_runs_from_the_run_button(seen, comfy):
    run = seen["run"]
    assert run["finished"] and not run["status"].get("node_errors"), run
    history = comfy.history(run["promptId"])
    workflow = json.loads((WORKFLOWS[0].parent / f"{RUN}.json").read_text())
    prompt = to_api(workflow, comfy.object_info())
    (save_id,) = [i for i, spec in prompt.items() if spec["class_type"] == "SaveImage"]
    (entry,) = history["outputs"][save_id]["images"]
    out = np.asarray(Image.open(comfy.output_dir / entry.get("subfolder", "") / entry["filename"]))
    src = np.asarray(Image.open(comfy.input_dir / INPUT))
    assert out.shape == src.shape
    # The face region: the engine's own mask with the workflow's Image Mask settings (as in
    # test_comfyui_crop_stitch.py); outside it the output is the photo, inside the face is pixelated.
    import torch

    from maskmargin.loader import load_detector
    from maskmargin.pipeline import image_mask
    from maskmargin.settings import MaskSettings

    settings = next(spec for spec in prompt.values() if spec["class_type"] == "MaskMarginImageMask")["inputs"]
    mask = (
        image_mask(
            load_detector("mediapipe_face_full"),
            torch.from_numpy(src[None].copy()).float().div(255),
            MaskSettings(
                settings["confidence"], settings["max_detections"], settings["mask_padding"], settings["mask_blur"]
            ),
        )
        .masks[0]
        .numpy()
    )
    diff = np.abs(out.astype(np.int16) - src.astype(np.int16))
    assert (mask > 0).mean() > 0.01, "a face was found"
    assert diff[mask == 0].max() <= 1, "outside the face: the photo (SaveImage truncates 255*x)"
    assert diff[mask == 1].mean() > 10, "the face is changed"


def test_nodes_show_their_previews_after_the_run(seen):
    shown = {n["type"]: n for n in seen["run"]["shown"]}
    assert shown["MaskMarginImageMask"]["imgs"] == 1, "Image Mask shows its preview"
    assert shown["MaskMarginImageMask"]["counts"] == [1], "and how many faces it found"
    assert shown["MaskMarginCrop"]["imgs"] == 1, "Mask Margin Crop shows its crop"
    assert shown["SaveImage"]["imgs"] == 1
    executed = {e["node"]: e["output"] for e in seen["run"]["executed"]}
    assert any(out.get("maskmargin_counts") == [1] for out in executed.values())


def test_model_picker_is_grouped_and_says_which_files_are_missing(seen):
    picker = seen["picker"]
    groups = [e["text"] for e in picker["entries"] if e["group"]]
    assert groups[:4] == ["Faces", "Facial features (face mesh)", "Hands", "People"], groups
    assert any(g.startswith("Extras") for g in groups)
    models = [e["text"] for e in picker["entries"] if not e["group"]]
    assert len(models) >= 17, models  # the 15 API models, the 2 extras, any .pt another test put in the folders
    assert any(t.startswith("face_yolov8n") and "file missing" in t for t in models), models
    assert not any("file missing" in t for t in models if "mediapipe" in t or "mesh" in t)
    # Picking from the grouped menu sets the plain model name, which is what the workflow stores.
    assert picker["before"]["value"] == "mediapipe_face_full"
    assert any(n.startswith("runs MediaPipe's files from models/mediapipe") for n in picker["before"]["note"])
    assert picker["picked"]["value"] == "face_yolov8n"
    assert picker["picked"]["serialized"] == ["face_yolov8n", "local"], "the note widget is not serialized"
    assert "needs face_yolov8n.pt in models/ultralytics/bbox: missing" in picker["picked"]["note"]
    assert "runs on the Image Masking API (runware:35@1): no file needed here" in picker["picked"]["remoteNote"]


def test_api_key_setting_is_kept_on_the_server_only(seen, comfy):
    key = seen["apiKey"]
    assert key["inputType"] == "password"
    saved = key["afterSave"]
    assert saved["status"].startswith("key set"), saved["status"]
    assert saved["inputValue"] == "", "the field empties after saving"
    assert saved["settingValue"] == "", "the setting's own value stays empty"
    for where in ("localStorage", "settings", "workflow"):
        assert KEY not in saved[where], f"the key leaked into {where}"
    assert key["afterClear"] == "not set"
    assert comfy.get("/maskmargin/api_key")["keySet"] is False
    for path in (comfy.base_dir / "user").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".db", ""):
            assert KEY.encode() not in path.read_bytes(), f"the key is still in {path}"


def test_model_route_describes_every_choice(comfy):
    info = json.loads(urllib.request.urlopen(comfy.url + "/maskmargin/models", timeout=30).read())
    options = comfy.object_info("MaskMarginDetectorLoader")["MaskMarginDetectorLoader"]["input"]["required"]["model"]
    values = options[1]["options"] if options[0] == "COMBO" else options[0]
    assert [m["name"] for m in info["models"]] == values, "one entry per combo value, same order"
    by_name = {m["name"]: m for m in info["models"]}
    assert (
        by_name["face_yolov8n"].items()
        >= {
            "group": "face",
            "needs_file": True,
            "file_name": "face_yolov8n.pt",
            "folder": "models/ultralytics/bbox",
        }.items()
    )
    assert by_name["mediapipe_face_full"]["needs_file"] is False
    assert by_name["eyes_lips_mesh"]["group"] == "facial features"
    assert by_name["extra_mediapipe_hands"]["group"] == "extras" and by_name["extra_mediapipe_hands"]["remote"] is False
