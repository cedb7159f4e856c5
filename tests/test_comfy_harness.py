"""The ComfyUI test harness: a real server starts, runs a core graph, and loads this pack."""

import pytest
from comfy_harness import (
    REPO_ROOT,
    ComfyError,
    assert_pack_loaded,
    custom_node_import_results,
    execution_error,
)

# --------------------------------------------------------------------------------------------------
# Log and history parsing (no server needed)

_OK_LOG = """\
Import times for custom nodes:
   0.0 seconds: /tmp/b/custom_nodes/websocket_image_save.py
   1.2 seconds: /tmp/b/custom_nodes/MaskMargin
"""

_FAILED_LOG = """\
Traceback (most recent call last):
  File "/c/nodes.py", line 2155, in load_custom_node
    module_spec.loader.exec_module(module)
ModuleNotFoundError: No module named 'torchaudio'

Cannot import /c/comfy_extras/nodes_audio.py module for custom nodes: No module named 'torchaudio'
Traceback (most recent call last):
  File "/c/nodes.py", line 2155, in load_custom_node
    module_spec.loader.exec_module(module)
  File "/tmp/b/custom_nodes/MaskMargin/__init__.py", line 3, in <module>
    from .nodes import extension
ModuleNotFoundError: No module named 'ultralytics'

Cannot import /tmp/b/custom_nodes/MaskMargin module for custom nodes: No module named 'ultralytics'

Import times for custom nodes:
   0.0 seconds: /tmp/b/custom_nodes/websocket_image_save.py
   0.2 seconds (IMPORT FAILED): /tmp/b/custom_nodes/MaskMargin
"""


def test_import_results_parsed():
    assert custom_node_import_results(_FAILED_LOG) == {
        "/tmp/b/custom_nodes/websocket_image_save.py": True,
        "/tmp/b/custom_nodes/MaskMargin": False,
    }


def test_assert_pack_loaded_accepts_a_clean_import():
    assert_pack_loaded(_OK_LOG)


def test_assert_pack_loaded_reports_the_traceback():
    with pytest.raises(AssertionError) as caught:
        assert_pack_loaded(_FAILED_LOG)
    message = str(caught.value)
    assert "No module named 'ultralytics'" in message
    assert "MaskMargin/__init__.py" in message
    assert "torchaudio" not in message  # other modules' failures are not blamed on the pack


def test_assert_pack_loaded_requires_the_pack_in_the_list():
    with pytest.raises(AssertionError, match="not in ComfyUI's import times"):
        assert_pack_loaded(_OK_LOG.replace("MaskMargin", "SomethingElse"))
    with pytest.raises(AssertionError):
        assert_pack_loaded(_OK_LOG.replace("MaskMargin", "MaskMarginExtra"))


def test_execution_error_found_in_history():
    assert execution_error({"status": {"status_str": "success", "messages": []}}) is None
    entry = {
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [
                ["execution_start", {"prompt_id": "p"}],
                ["execution_error", {"node_id": "2", "node_type": "X", "exception_message": "boom"}],
            ],
        }
    }
    assert execution_error(entry)["exception_message"] == "boom"


# --------------------------------------------------------------------------------------------------
# A real ComfyUI (skipped unless COMFYUI_DIR is set)


@pytest.mark.comfyui
def test_server_starts_with_core_nodes(comfy):
    info = comfy.object_info()
    for node in ("LoadImage", "SaveImage", "ImageInvert"):
        assert node in info, node
    assert comfy.object_info("ImageInvert")["ImageInvert"]["output"] == ["IMAGE"]


@pytest.mark.comfyui
def test_pack_imports_without_error(comfy):
    if not (REPO_ROOT / "__init__.py").exists():
        pytest.skip("the pack's root __init__.py does not exist yet")
    comfy.assert_pack_loaded()


@pytest.mark.comfyui
def test_core_graph_runs_and_saves(comfy):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")

    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[:, :16] = (255, 0, 0)
    comfy.put_input_image("harness_in.png", pixels)
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "harness_in.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "harness/inv"}},
    }
    history = comfy.wait_for(comfy.queue_prompt(graph), timeout=120)

    (path,) = comfy.output_files(history)
    assert path.is_file() and path.parent == comfy.output_dir / "harness"
    out = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape == pixels.shape
    assert (out == 255 - pixels).all()


@pytest.mark.comfyui
def test_rejected_prompt_raises_with_details(comfy):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "does_not_exist.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(ComfyError, match="rejected the prompt"):
        comfy.queue_prompt(graph)
