"""The remote service's URL and key as saved on the server side (ComfyUI's user folder), never in a workflow.

One small JSON file, `remote.json` (`{"apiUrl": ..., "apiKey": ...}`), readable by its owner only.
RUNWARE_API_URL / RUNWARE_API_KEY in the environment win over it (an operator's choice beats a
setting typed into the UI). Nothing here prints or returns the key: status reports only whether one
is set and where it came from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidParameter
from .config import DEFAULT_API_URL, RemoteConfig

log = logging.getLogger("maskmargin.remote")

FILE_NAME = "remote.json"
MAX_KEY_LENGTH = 512


def read_saved(folder: Path) -> dict[str, str]:
    """{"apiUrl", "apiKey"} from the folder's file; missing or unreadable means nothing saved."""
    path = Path(folder) / FILE_NAME
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("MaskMargin: %s is unreadable; save the remote settings again", path)  # content never logged
        return {}
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if k in ("apiUrl", "apiKey") and isinstance(v, str) and v}


def check_key(key: Any) -> str:
    if (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > MAX_KEY_LENGTH
        or any(c.isspace() for c in key.strip())
    ):
        raise InvalidParameter(
            f"apiKey must be a non-empty string without spaces, at most {MAX_KEY_LENGTH} characters", parameter="apiKey"
        )
    return key.strip()


def save(folder: Path, api_key: str | None = None, api_url: str | None = None) -> None:
    """Store (or with "" remove) the key and URL; the file is created owner-only before anything is written."""
    folder = Path(folder)
    saved = read_saved(folder)
    if api_key is not None:
        if api_key == "":
            saved.pop("apiKey", None)
        else:
            saved["apiKey"] = check_key(api_key)
    if api_url is not None:
        if api_url == "":
            saved.pop("apiUrl", None)
        else:
            saved["apiUrl"] = RemoteConfig(api_url=api_url.strip()).api_url  # validated the same way
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    tmp = folder / (FILE_NAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(saved, f)
    os.replace(tmp, folder / FILE_NAME)


def effective_config(folder: Path | None, env: Mapping[str, str] | None = None) -> RemoteConfig:
    """RemoteConfig from the environment, falling back on the saved URL and key."""
    env = dict(os.environ if env is None else env)
    saved = read_saved(folder) if folder is not None else {}
    if not env.get("RUNWARE_API_URL", "").strip() and "apiUrl" in saved:
        env["RUNWARE_API_URL"] = saved["apiUrl"]
    if not env.get("RUNWARE_API_KEY", "").strip() and "apiKey" in saved:
        env["RUNWARE_API_KEY"] = saved["apiKey"]
    return RemoteConfig.from_env(env)


def status(folder: Path | None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the UI may show: the URL, whether a key is set and from where; never the key."""
    env = os.environ if env is None else env
    saved = read_saved(folder) if folder is not None else {}

    def source(name: str, field: str) -> str | None:
        if env.get(name, "").strip():
            return "environment"
        return "saved" if field in saved else None

    url_source = source("RUNWARE_API_URL", "apiUrl")
    url = (
        env.get("RUNWARE_API_URL", "").strip() if url_source == "environment" else saved.get("apiUrl", DEFAULT_API_URL)
    )
    key_source = source("RUNWARE_API_KEY", "apiKey")
    return {
        "apiUrl": url,
        "apiUrlSource": url_source or "default",
        "keySet": key_source is not None,
        "keySource": key_source,
    }
