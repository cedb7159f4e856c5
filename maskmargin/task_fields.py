"""Every field of every Image Masking API task, declared once: name, type, default, range and meaning.

The task parser (`api_tasks`), the service (`service/`), the parameter objects (`settings.MaskSettings`
takes its defaults and ranges from here), the node schemas (through `MaskSettings`) and every error
message read these tables; adding a field is one row here and its use in the operation.

Real clients send the imageMasking task in two shapes: flat (`inputImage`, `confidence`, ...) and the
current schema's (`inputs: {image}`, `settings: {confidence, maxDetections, maskPadding, maskBlur}`). A
field's `group` says which nested object the second shape puts it in, and `group_name` its name there.
"""

from __future__ import annotations

import math
import reprlib
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameter
from .images import FORMATS

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 2, 60, 60, 4, 4


def shown(value: Any) -> str:
    """A value as an error message quotes it: short, whatever its size or nesting."""
    return _short.repr(value)


REQUIRED = object()  # the default of a field a task must carry


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Field:
    """One task field. `kind`: string, uuid, url, number, integer, boolean or choice."""

    name: str
    kind: str
    doc: str
    default: Any = None  # REQUIRED, None (optional, absent) or the value used when absent
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # (accepted spelling, the choice it means), e.g. JPEG -> JPG
    group: str | None = None  # the nested object of the current schema that may hold it: settings, inputs
    group_name: str | None = None  # its name inside that object (default: `name`)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str:
        """What a valid value is, in words, as error messages and docs say it."""
        if self.kind in ("number", "integer"):
            article = "a number" if self.kind == "number" else "an integer"
            if self.minimum is not None and self.maximum is not None:
                return f"{article} from {_number_text(self.minimum)} to {_number_text(self.maximum)}"
            if self.minimum is not None:
                return f"{article} >= {_number_text(self.minimum)}"
            return article
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "uuid":
            return "a UUID v4 string"
        if self.kind == "url":
            return "an http(s) URL"
        return "a non-empty string"

    def invalid(self, value: Any, name: str | None = None) -> InvalidParameter:
        name = name or self.name
        return InvalidParameter(f"{name} must be {self.range_text()}, got {shown(value)}", parameter=name)

    def read(self, value: Any, name: str | None = None) -> Any:
        """The validated value (choices in their canonical spelling); InvalidParameter names the field."""
        name = name or self.name
        kind = self.kind
        if kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not self._in_range(value):
                raise self.invalid(value, name)
            return float(value)
        if kind == "integer":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not self._in_range(value):
                raise self.invalid(value, name)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self.invalid(value, name)
            return value
        if kind == "choice":
            if isinstance(value, str):
                for spelling, choice in (*((c, c) for c in self.choices), *self.aliases):
                    if value.lower() == spelling.lower():
                        return choice
            raise self.invalid(value, name)
        if kind == "uuid":
            try:
                parsed = uuid.UUID(value) if isinstance(value, str) else None
            except ValueError:
                parsed = None
            if parsed is None or parsed.version != 4:
                raise self.invalid(value, name)
            return value
        if kind == "url":
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise InvalidParameter(f"{name} must be {self.range_text()}", parameter=name)
            return value
        if not isinstance(value, str) or not value.strip():
            raise InvalidParameter(f"{name} is required ({self.range_text()})", parameter=name)
        return value

    def _in_range(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


def _table(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


TASK_TYPE = Field("taskType", "string", "the task's kind", REQUIRED)
TASK_UUID = Field("taskUUID", "uuid", "UUID v4 chosen by the client, unique per task; echoed back", REQUIRED)

MAX_DETECTIONS = 20
MAX_PADDING = 1024  # beyond this a padding is a mistake, not a wish (and costs O(k) passes)
OUTPUT_FORMATS = tuple(FORMATS)  # JPG, PNG, WEBP: the format table's keys
OUTPUT_TYPES = ("base64Data", "dataURI", "URL")
DELIVERY_METHODS = ("sync", "async")

IMAGE_MASKING = _table(
    TASK_TYPE,
    TASK_UUID,
    Field(
        "inputImage",
        "string",
        "an uploaded image's UUID, a data URI, base64 image data or an http(s) URL (locally also a file path)",
        REQUIRED,
        group="inputs",
        group_name="image",
    ),
    Field("model", "string", "a model name or AIR id (runware:35@1..15)", REQUIRED),
    Field("confidence", "number", "keep detections scoring at least this", 0.25, 0.0, 1.0, group="settings"),
    Field(
        "maxDetections",
        "integer",
        "keep at most this many, highest confidence first",
        6,
        1,
        MAX_DETECTIONS,
        group="settings",
    ),
    Field(
        "maskPadding",
        "integer",
        "grow (positive) or shrink (negative) each detected mask by this many pixels",
        4,
        -MAX_PADDING,
        MAX_PADDING,
        group="settings",
    ),
    Field(
        "maskBlur",
        "integer",
        "a fade-out band of this many pixels outside the (padded) mask",
        4,
        0,
        MAX_PADDING,
        group="settings",
    ),
    Field(
        "outputFormat", "choice", "the mask image's format", "JPG", choices=OUTPUT_FORMATS, aliases=(("JPEG", "JPG"),)
    ),
    Field("outputType", "choice", "how the mask comes back", "URL", choices=OUTPUT_TYPES),
    Field("outputQuality", "integer", "JPG and WEBP quality of the mask image", 95, 20, 99),
    Field("includeCost", "boolean", "add cost to the result", False),
    Field("uploadEndpoint", "url", "also PUT the mask image's bytes to this URL"),
    Field("webhookURL", "url", "also POST the result (or the error) to this URL when the task is done"),
    Field(
        "deliveryMethod",
        "choice",
        "sync: the answer carries the result; async: an acknowledgement, the result comes from getResponse",
        "sync",
        choices=DELIVERY_METHODS,
    ),
    Field("ttl", "integer", "seconds the service keeps a URL output (default: until the store is full)", None, 60),
)

IMAGE_UPLOAD = _table(
    TASK_TYPE,
    TASK_UUID,
    Field("image", "string", "a data URI, base64 image data or an http(s) URL to keep for reuse by UUID", REQUIRED),
)

AUTHENTICATION = _table(
    TASK_TYPE,
    Field("apiKey", "string", "the API key (required unless an 'Authorization: Bearer <key>' header has it)"),
    Field("taskUUID", "uuid", "echoed back when given"),
    Field("connectionSessionUUID", "uuid", "a WebSocket session to resume after a reconnect"),
)

GET_RESPONSE = _table(TASK_TYPE, TASK_UUID)  # taskUUID: the async task's

PING = _table(TASK_TYPE, Field("ping", "boolean", "a keep-alive, answered with pong", True))

TASK_TABLES: dict[str, dict[str, Field]] = {
    "imageMasking": IMAGE_MASKING,
    "imageUpload": IMAGE_UPLOAD,
    "authentication": AUTHENTICATION,
    "getResponse": GET_RESPONSE,
    "ping": PING,
}


def check_known(task: dict, table: dict[str, Field], allowed_groups: tuple[str, ...] = ()) -> None:
    """Refuse any field the table does not declare, naming the first one."""
    allowed = set(table) | set(allowed_groups)
    unknown = sorted(k for k in task if k not in allowed)
    if unknown:
        kind = task.get("taskType")
        raise InvalidParameter(
            f"unknown field {shown(unknown[0])} for {kind if isinstance(kind, str) else shown(kind)}; "
            f"allowed: {', '.join(sorted(allowed))}",
            parameter=unknown[0],
        )


def read_task(task: dict, table: dict[str, Field]) -> dict[str, Any]:
    """Every field of `table` read from `task`, flat or nested in its group object; defaults filled in.

    Unknown fields (also inside a group object) and a field given both flat and nested are refused.
    """
    groups = sorted({f.group for f in table.values() if f.group})
    check_known(task, table, tuple(groups))
    nested: dict[str, dict] = {}
    for group in groups:
        value = task.get(group, {})
        if not isinstance(value, dict):
            raise InvalidParameter(f"{group} must be an object, got {shown(value)}", parameter=group)
        members = {f.group_name or f.name: f for f in table.values() if f.group == group}
        unknown = sorted(k for k in value if k not in members)
        if unknown:
            raise InvalidParameter(
                f"unknown field {shown(unknown[0])} in {group}; allowed: {', '.join(sorted(members))}",
                parameter=f"{group}.{unknown[0]}",
            )
        nested[group] = value
    out: dict[str, Any] = {}
    for field in table.values():
        name, value = field.name, task.get(field.name)
        if field.group is not None:
            inner = field.group_name or field.name
            if inner in nested[field.group]:
                if field.name in task:
                    raise InvalidParameter(
                        f"{field.name} is given twice: flat and as {field.group}.{inner}; send one",
                        parameter=field.name,
                    )
                name, value = f"{field.group}.{inner}", nested[field.group][inner]
        if value is None:
            if field.required:
                raise InvalidParameter(f"{name} is required ({field.range_text()})", parameter=name)
            out[field.name] = None if field.default is REQUIRED else field.default
            continue
        out[field.name] = field.read(value, name)
    return out
