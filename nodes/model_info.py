"""GET /maskmargin/models: what each Detector Loader choice is, and whether its file is here.

The frontend (js/maskmargin.js) groups the model picker with it and shows, under the combo, whether the
chosen model needs a file and where that file goes. The combo's values stay the plain model names
(workflows store them); this route only describes them.
"""

from __future__ import annotations

from pathlib import Path

import folder_paths
from aiohttp import web

from ..maskmargin.loader import find_file
from ..maskmargin.registry import MODELS, ModelSpec, spec_for_file
from . import comfy_env
from .types import model_options

ROUTE = "/maskmargin/models"
GROUPS = ("face", "facial features", "hands", "people", "extras", "user")  # the picker's order


def _shown(folder: Path, models_root: Path) -> str:
    """A folder as the user knows it: models/... when it is under ComfyUI's models folder."""
    try:
        return "models/" + folder.resolve().relative_to(models_root.resolve()).as_posix()
    except ValueError:
        return str(folder)


def describe(spec: ModelSpec, folders: tuple[Path, ...], models_root: Path, option: str | None = None) -> dict:
    """One picker entry: the option value, its group and, for YOLO files, whether the file is present."""
    entry = {
        "name": option or spec.name,
        "group": spec.group,
        "masks": spec.masks,
        "air": spec.air,
        "needs_file": spec.needs_file,
        "remote": spec.air is not None,  # only the 15 API models run remotely
    }
    if spec.file_name:  # a YOLO model: its file is looked for
        present = find_file(spec.file_name, folders)
        entry |= {
            "file_name": spec.file_name,
            "present": present is not None,
            "folder": _shown(
                present.parent if present else (folders or (Path("ultralytics") / (spec.subfolder or "bbox"),))[0],
                models_root,
            ),
            "download_url": spec.download_url,
        }
    return entry


def model_info() -> dict:
    dirs = comfy_env.model_dirs()
    models_root = Path(folder_paths.models_dir)
    by_name = {m.name: m for m in MODELS}
    entries = []
    for option in model_options():
        spec = by_name.get(option)
        if spec is not None:
            entries.append(describe(spec, dirs.yolo_dirs(spec), models_root))
            continue
        _, folders = dirs.user_option(option) or (option, ())  # a user's own bbox/x.pt or segm/x.pt
        user = spec_for_file(Path(option))
        entries.append(describe(user, folders, models_root, option))
    return {"groups": list(GROUPS), "models": entries}


async def _get(request: web.Request) -> web.Response:
    return web.json_response(model_info())


def register_routes() -> None:
    """Add GET /maskmargin/models to ComfyUI's server (when one is running)."""
    routes = comfy_env.server_routes()
    if routes is not None:
        routes.get(ROUTE)(_get)


__all__ = ["ROUTE", "describe", "model_info", "register_routes"]
