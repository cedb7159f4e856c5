"""Help inside ComfyUI: every node, input and output is described, and each node's help page is served
where ComfyUI 0.8's frontend (comfyui_frontend_package 1.35) looks for it.

The frontend's NodeHelpService takes the pack name from the node's `python_module`
("custom_nodes.<folder>") and fetches `/extensions/<folder>/docs/<NodeId>/<locale>.md`, then
`/extensions/<folder>/docs/<NodeId>.md`; a text/html answer counts as missing. `/extensions/<folder>/`
serves the pack's WEB_DIRECTORY (`js/`), so the pages live in `js/docs/<NodeId>.md` (one page for every
locale).
"""

import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parents[1]
NODES = [
    "MaskMarginDetectorLoader",
    "MaskMarginImageMask",
    "MaskMarginCrop",
    "MaskMarginStitch",
    "MaskMarginSelectRegions",
    "MaskMarginRegionPrompts",
    "MaskMarginToSEGS",
    "MaskMarginFromSEGS",
    "MaskMarginTrackVideo",
]


def inputs_of(info: dict) -> dict[str, dict]:
    found = {}
    for section in ("required", "optional"):
        for name, spec in (info["input"].get(section) or {}).items():
            found[name] = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return found


def help_urls(info: dict, node_id: str, locale: str = "en") -> list[str]:
    """The URLs the frontend tries, in order (NodeHelpService.fetchCustomNodeHelp)."""
    parts = (info.get("python_module") or "").split(".")
    assert len(parts) >= 2 and parts[0] == "custom_nodes", info.get("python_module")
    pack = urllib.parse.quote(parts[1].split("@")[0])
    return [f"/extensions/{pack}/docs/{node_id}/{locale}.md", f"/extensions/{pack}/docs/{node_id}.md"]


def fetch(comfy, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(comfy.url + path, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), ""


@pytest.mark.parametrize("node_id", NODES)
def test_node_inputs_and_outputs_have_descriptions_and_tooltips(comfy, node_id):
    info = comfy.object_info(node_id)[node_id]
    assert len(info["description"]) > 60, "the node needs a description"
    for name, options in inputs_of(info).items():
        tooltip = options.get("tooltip") or ""
        assert len(tooltip) > 15, f"{node_id}.{name} has no useful tooltip: {tooltip!r}"
        if info["input"].get("required", {}).get(name, [None])[0] in ("INT", "FLOAT"):
            assert re.search(r"\d", tooltip), f"{node_id}.{name}: say the unit and range in the tooltip"
    tooltips = info.get("output_tooltips") or []
    assert len(tooltips) == len(info["output"]), f"{node_id}: every output needs a tooltip"
    for name, tooltip in zip(info["output_name"], tooltips):
        assert tooltip and len(tooltip) > 15, f"{node_id} output {name} has no useful tooltip"


def test_detector_loader_where_input_is_explained(comfy):
    info = comfy.object_info("MaskMarginDetectorLoader")["MaskMarginDetectorLoader"]
    tooltip = inputs_of(info)["where"]["tooltip"]
    for word in ("local", "remote", "RUNWARE_API_KEY", "/maskmargin/api_key"):
        assert word in tooltip


@pytest.mark.parametrize("node_id", NODES)
def test_help_page_is_served_where_the_frontend_asks(comfy, node_id):
    info = comfy.object_info(node_id)[node_id]
    localized, fallback = help_urls(info, node_id)
    status, _, _ = fetch(comfy, localized)
    assert status == 404, "no per-locale page: the frontend then fetches the common one"
    status, content_type, text = fetch(comfy, fallback)
    assert status == 200, f"GET {fallback} -> {status}"
    assert "text/html" not in content_type, "the frontend treats text/html as 'help not found'"
    assert text == (ROOT / "js" / "docs" / f"{node_id}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {info['display_name']}\n")
    for name in [*inputs_of(info), *info["output_name"]]:
        assert f"`{name}`" in text, f"the help page of {node_id} does not explain {name}"


def test_help_pages_are_not_loaded_as_scripts_and_pyproject_parses(comfy):
    """Only .js files in js/ are loaded by the frontend; ComfyUI's own pyproject parser accepts ours."""
    assert not [e for e in comfy.get("/extensions") if "/docs/" in e]
    log = comfy.log_text()
    assert "Unable to parse pyproject.toml" not in log
