"""ComfyUI-side plumbing shared by the nodes: model folders, devices, progress, interruption and
the previews a node shows."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io, ui

from ..maskmargin.loader import ModelDirs
from ..maskmargin.preview import encode_jpeg
from ..maskmargin.settings import Progress, stop_check

# The folder names Impact-Subpack registers too, so both packs share one set of YOLO files.
FOLDERS = {
    "ultralytics_bbox": ("ultralytics", "bbox"),
    "ultralytics_segm": ("ultralytics", "segm"),
    "mediapipe": ("mediapipe",),
}


def register_folders() -> None:
    for name, parts in FOLDERS.items():
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = ([os.path.join(folder_paths.models_dir, *parts)], {".pt"})


def _paths(name: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in folder_paths.get_folder_paths(name))


def model_dirs() -> ModelDirs:
    register_folders()
    return ModelDirs(_paths("ultralytics_bbox"), _paths("ultralytics_segm"), _paths("mediapipe"))


def torch_device():
    return mm.get_torch_device()


def output_device():
    return mm.intermediate_device()


def progress_for(total: int) -> Progress:
    """A progress callback that updates ComfyUI's bar and stops when the user cancels the run."""
    bar = comfy.utils.ProgressBar(total)
    return stop_check(
        mm.throw_exception_if_processing_interrupted, lambda done, total: bar.update_absolute(done, total)
    )


def output_used(dynprompt, node_id: str | None, index: int) -> bool:
    """Whether any node of the running prompt reads output `index` of node `node_id`.

    Lets a node skip work for an output nobody consumes; when the prompt is unknown it answers True.
    """
    if dynprompt is None or node_id is None:
        return True
    for other in dynprompt.all_node_ids():
        for value in (dynprompt.get_node(other).get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id) and value[1] == index:
                return True
    return False


def server_routes():
    """ComfyUI's route table (aiohttp RouteTableDef), or None when no server is running (e.g. in tests).

    Looked up among the modules already loaded: importing ComfyUI's `server` here would load aiohttp
    and the whole frontend stack (seconds) in a process that runs no server."""
    module = sys.modules.get("server")
    prompt_server = getattr(module, "PromptServer", None)
    server = getattr(prompt_server, "instance", None)
    return None if server is None else server.routes


def show_images(images: torch.Tensor) -> dict:
    """The UI entry that shows uint8 [B, h, w, 3] previews on a node.

    Written as JPEG files to ComfyUI's temp folder, as its own previews are (PNG there): a PNG of a
    photo takes about 20 ms for 512 x 512, four times the face detection it would show; JPEG about 1 ms.
    """
    folder = Path(folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"maskmargin_{uuid.uuid4().hex[:12]}"
    saved = []
    for i, data in enumerate(encode_jpeg(images)):
        name = f"{prefix}_{i:05}.jpg"
        (folder / name).write_bytes(data)
        saved.append(ui.SavedResult(name, "", io.FolderType.temp))
    return {"images": saved, "animated": (False,)}
