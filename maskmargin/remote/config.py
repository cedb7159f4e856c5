"""Where the remote Image Masking API is and how to talk to it, from the environment or overrides."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api_tasks import OUTPUT_TYPES
from ..errors import InvalidParameter

DEFAULT_API_URL = "https://api.runware.ai/v1"


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type, low: float) -> Any:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < low:
        raise InvalidParameter(f"{name} must be a number >= {low}, got {text!r}", parameter=name)
    return value


@dataclass(frozen=True)
class RemoteConfig:
    """Where the service is, how to authenticate, and how patient and parallel to be."""

    api_url: str = DEFAULT_API_URL
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0  # seconds per request (connect, read, write, pool)
    concurrency: int = 4  # requests in flight at once
    retries: int = 4  # extra attempts after a 429, 5xx, dropped connection or timeout
    backoff: float = 0.5  # first retry delay in seconds, doubled each time (unless Retry-After says)
    max_backoff: float = 30.0
    upload: bool = False  # upload each image once (imageUpload) and send its UUID, instead of a data URI
    output_type: str = "base64Data"  # how masks come back; URL and dataURI work too

    def __post_init__(self) -> None:
        if not isinstance(self.api_url, str) or not self.api_url.startswith(("http://", "https://")):
            raise InvalidParameter("RUNWARE_API_URL must be an http(s) URL", parameter="RUNWARE_API_URL")
        if not self.timeout > 0:
            raise InvalidParameter("MASKMARGIN_TIMEOUT must be > 0 seconds", parameter="MASKMARGIN_TIMEOUT")
        if self.concurrency < 1 or self.retries < 0 or self.backoff < 0:
            raise InvalidParameter("concurrency must be >= 1, retries and backoff >= 0", parameter="concurrency")
        if self.output_type not in OUTPUT_TYPES:
            raise InvalidParameter(f"output_type must be one of {', '.join(OUTPUT_TYPES)}", parameter="outputType")

    def __repr__(self) -> str:  # the key never appears, only whether one is set
        key = "set" if self.api_key else "not set"
        return (
            f"RemoteConfig(api_url={self.api_url!r}, api_key={key}, timeout={self.timeout:g}, "
            f"concurrency={self.concurrency}, retries={self.retries}, upload={self.upload})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RemoteConfig:
        """RUNWARE_API_URL, RUNWARE_API_KEY, MASKMARGIN_TIMEOUT, MASKMARGIN_REMOTE_CONCURRENCY,
        MASKMARGIN_REMOTE_RETRIES and MASKMARGIN_REMOTE_UPLOAD; keyword overrides win when not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "api_url": env.get("RUNWARE_API_URL", "").strip() or DEFAULT_API_URL,
            "api_key": env.get("RUNWARE_API_KEY", "").strip() or None,
            "timeout": _env_number(env, "MASKMARGIN_TIMEOUT", 60.0, float, 0.001),
            "concurrency": _env_number(env, "MASKMARGIN_REMOTE_CONCURRENCY", 4, int, 1),
            "retries": _env_number(env, "MASKMARGIN_REMOTE_RETRIES", 4, int, 0),
            "upload": env.get("MASKMARGIN_REMOTE_UPLOAD", "").strip().lower() in ("1", "true", "yes", "on"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
