"""Remote masking in ComfyUI: where the key lives, the route that sets it, and remote detectors.

The key is never a node input (it would be saved in the workflow and in every PNG's metadata). It
comes from RUNWARE_API_KEY or from `remote.json` in ComfyUI's system user folder
(`user/__maskmargin/`, which ComfyUI's /userdata endpoints refuse to serve), written by
`POST /maskmargin/api_key` and read afresh on every run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import comfy.model_management as mm
import folder_paths
from aiohttp import web

from ..maskmargin.errors import MaskMarginError
from ..maskmargin.registry import ModelSpec
from ..maskmargin.remote import settings as remote_settings
from ..maskmargin.remote.config import RemoteConfig
from ..maskmargin.remote.detector import RemoteDetector, remote_model
from . import comfy_env

log = logging.getLogger("maskmargin")
ROUTE = "/maskmargin/api_key"


def settings_dir() -> Path:
    system_dir = getattr(folder_paths, "get_system_user_directory", None)
    if system_dir is not None:
        return Path(system_dir("maskmargin"))
    return Path(folder_paths.get_user_directory()) / "__maskmargin"  # older ComfyUI: same name, same protection


def config() -> RemoteConfig:
    return remote_settings.effective_config(settings_dir())


def detector(model: str) -> RemoteDetector:
    spec: ModelSpec = remote_model(model)
    return RemoteDetector(spec, config, stop_check=mm.throw_exception_if_processing_interrupted)


async def _get(request: web.Request) -> web.Response:
    return web.json_response(remote_settings.status(settings_dir()))


async def _post(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not set(body) <= {"apiKey", "apiUrl"} or not body:
        return web.json_response(
            {"error": 'send {"apiKey": "...", "apiUrl": "..."} (either may be "" to clear)'}, status=400
        )
    try:
        remote_settings.save(settings_dir(), body.get("apiKey"), body.get("apiUrl"))
    except MaskMarginError as exc:
        return web.json_response({"error": exc.message, "parameter": exc.parameter}, status=400)
    log.info("MaskMargin: remote settings saved (%s)", ", ".join(sorted(body)))  # names only, never values
    return web.json_response(remote_settings.status(settings_dir()))


async def _delete(request: web.Request) -> web.Response:
    remote_settings.save(settings_dir(), api_key="", api_url="")
    return web.json_response(remote_settings.status(settings_dir()))


def register_routes() -> None:
    """Add the settings route to ComfyUI's server (when one is running)."""
    routes = comfy_env.server_routes()
    if routes is not None:
        routes.get(ROUTE)(_get)
        routes.post(ROUTE)(_post)
        routes.delete(ROUTE)(_delete)


__all__ = ["ROUTE", "config", "detector", "register_routes", "settings_dir"]
