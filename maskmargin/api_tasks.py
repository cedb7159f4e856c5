"""The Image Masking API's tasks (docs/ARCHITECTURE.md): validation, execution and result shapes.

Transport-free: the command line and the HTTP service give a `TaskContext` that knows how to find
input images, load detectors and publish mask images; everything else is shared.
"""

from __future__ import annotations

import base64
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends.base import Detector
from .detection import ImageDetections
from .errors import InvalidParameter, MaskMarginError
from .images import FORMATS, encode_mask, to_data_uri
from .masks import build_mask
from .pipeline import detect_arrays
from .settings import MaskSettings

OUTPUT_FORMATS = tuple(FORMATS)
OUTPUT_TYPES = ("base64Data", "dataURI", "URL")
LOCAL_COST = 0.0  # local runs cost nothing; the field exists so clients can read it either way

MASKING_FIELDS = {
    "taskType",
    "taskUUID",
    "inputImage",
    "model",
    "confidence",
    "maxDetections",
    "maskPadding",
    "maskBlur",
    "outputFormat",
    "outputType",
    "includeCost",
    "uploadEndpoint",
}
UPLOAD_FIELDS = {"taskType", "taskUUID", "image"}


@dataclass(frozen=True)
class MaskingTask:
    task_uuid: str
    input_image: str
    model: str
    settings: MaskSettings
    output_format: str = "JPG"
    output_type: str = "URL"
    include_cost: bool = False
    upload_endpoint: str | None = None


def check_uuid(value: Any, parameter: str = "taskUUID") -> str:
    try:
        parsed = uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        parsed = None
    if not isinstance(value, str) or parsed is None or parsed.version != 4:
        raise InvalidParameter(f"{parameter} must be a UUID v4 string, got {value!r}", parameter=parameter)
    return value


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _check_fields(task: dict, allowed: set[str]) -> None:
    unknown = sorted(set(task) - allowed)
    if unknown:
        raise InvalidParameter(
            f"unknown field {unknown[0]!r} for {task.get('taskType')}; allowed: {', '.join(sorted(allowed))}",
            parameter=unknown[0],
        )


def _required_str(task: dict, name: str) -> str:
    value = task.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"{name} is required (a non-empty string)", parameter=name)
    return value


def _number(task: dict, name: str, default: float) -> float:
    value = task.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameter(f"{name} must be a number, got {value!r}", parameter=name)
    return float(value)


def _integer(task: dict, name: str, default: int) -> int:
    value = task.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"{name} must be an integer, got {value!r}", parameter=name)
    return value


def _choice(task: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = task.get(name, default)
    for choice in choices:
        if isinstance(value, str) and value.lower() == choice.lower():
            return choice
    raise InvalidParameter(f"{name} must be one of {', '.join(choices)}, got {value!r}", parameter=name)


def parse_masking_task(task: dict) -> MaskingTask:
    """A validated imageMasking task; out-of-range values raise InvalidParameter naming the field."""
    _check_fields(task, MASKING_FIELDS)
    task_uuid = check_uuid(task.get("taskUUID"))
    include_cost = task.get("includeCost", False)
    if not isinstance(include_cost, bool):
        raise InvalidParameter(f"includeCost must be true or false, got {include_cost!r}", parameter="includeCost")
    endpoint = task.get("uploadEndpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))):
        raise InvalidParameter("uploadEndpoint must be an http(s) URL", parameter="uploadEndpoint")
    settings = MaskSettings(
        confidence=_number(task, "confidence", 0.25),
        max_detections=_integer(task, "maxDetections", 6),
        mask_padding=_integer(task, "maskPadding", 4),
        mask_blur=_integer(task, "maskBlur", 4),
    )
    return MaskingTask(
        task_uuid=task_uuid,
        input_image=_required_str(task, "inputImage"),
        model=_required_str(task, "model"),
        settings=settings,
        output_format=_choice(task, "outputFormat", "JPG", OUTPUT_FORMATS),
        output_type=_choice(task, "outputType", "URL", OUTPUT_TYPES),
        include_cost=include_cost,
        upload_endpoint=endpoint,
    )


class TaskContext(ABC):
    """What a transport provides to run tasks: images by reference, detectors, and mask publishing."""

    def __init__(self) -> None:
        self.images: dict[str, np.ndarray] = {}

    @abstractmethod
    def fetch_image(self, reference: str) -> np.ndarray:
        """RGB uint8 image for a data URI, base64 text, URL or (locally) file path."""

    @abstractmethod
    def detector(self, model: str) -> Detector: ...

    @abstractmethod
    def publish(self, data: bytes, image_uuid: str, fmt: str) -> str:
        """Store mask bytes and return the URL that outputType URL hands back."""

    @abstractmethod
    def put(self, url: str, data: bytes, fmt: str) -> None:
        """PUT bytes to a client's uploadEndpoint."""

    def detect(self, model: str, pixels: np.ndarray, settings: MaskSettings) -> tuple[ImageDetections, float | None]:
        """One image's detections and what they cost (None: nothing charged, as for local runs).

        A remote context overrides this to send the work to a service and pass its cost on.
        """
        return detect_arrays(self.detector(model), [pixels], settings)[0], None

    def resolve_image(self, reference: str) -> tuple[str, np.ndarray]:
        """(imageUUID, pixels): a known UUID, or a new UUID for any other reference."""
        if is_uuid(reference):
            found = self.images.get(reference.lower())
            if found is None:
                raise InvalidParameter(
                    f"no image with UUID {reference}: upload it first (imageUpload)", parameter="inputImage"
                )
            return reference, found
        pixels = self.fetch_image(reference)
        return self.store_image(pixels), pixels

    def store_image(self, pixels: np.ndarray) -> str:
        image_uuid = str(uuid.uuid4())
        self.images[image_uuid] = pixels
        return image_uuid


def run_masking(task: MaskingTask, context: TaskContext) -> dict[str, Any]:
    image_uuid, pixels = context.resolve_image(task.input_image)
    found, cost = context.detect(task.model, pixels, task.settings)
    return masking_result(task, image_uuid, found, context, cost)


def masking_result(
    task: MaskingTask, image_uuid: str, found: ImageDetections, context: TaskContext, cost: float | None = None
) -> dict:
    s = task.settings
    mask = build_mask(found, s.mask_padding, s.mask_blur)
    data = encode_mask(mask, task.output_format)
    mask_uuid = str(uuid.uuid4())
    result: dict[str, Any] = {
        "taskType": "imageMasking",
        "taskUUID": task.task_uuid,
        "inputImageUUID": image_uuid,
        "detections": found.to_api(),
        "maskImageUUID": mask_uuid,
    }
    if task.output_type == "URL":
        result["maskImageURL"] = context.publish(data, mask_uuid, task.output_format)
    elif task.output_type == "dataURI":
        result["maskImageDataURI"] = to_data_uri(data, task.output_format)
    else:
        result["maskImageBase64Data"] = base64.b64encode(data).decode("ascii")
    if task.upload_endpoint:
        context.put(task.upload_endpoint, data, task.output_format)
    if task.include_cost:
        result["cost"] = LOCAL_COST if cost is None else cost
    return result


def run_upload(task: dict, context: TaskContext) -> dict[str, Any]:
    _check_fields(task, UPLOAD_FIELDS)
    task_uuid = check_uuid(task.get("taskUUID"))
    try:
        pixels = context.fetch_image(_required_str(task, "image"))
    except InvalidParameter as exc:  # contexts name the masking field; an upload's field is "image"
        if exc.parameter != "inputImage":
            raise
        raise type(exc)(exc.message.replace("inputImage", "image"), parameter="image") from exc
    return {"taskType": "imageUpload", "taskUUID": task_uuid, "imageUUID": context.store_image(pixels)}


def error_dict(code: str, message: str, parameter: str | None = None, task: Any = None) -> dict[str, Any]:
    """One entry of an answer's "errors" array, in the API's shape."""
    task = task if isinstance(task, dict) else {}
    return {
        "code": code,
        "message": message,
        "parameter": parameter,
        "taskType": task.get("taskType"),
        "taskUUID": task.get("taskUUID"),
    }


def error_entry(exc: Exception, task: Any) -> dict[str, Any]:
    if isinstance(exc, MaskMarginError):
        return error_dict(exc.code, exc.message, exc.parameter, task)
    # a bug or library failure: say so without a traceback
    return error_dict("internalError", f"{type(exc).__name__}: {exc}", None, task)


def run_tasks(tasks: Any, context: TaskContext) -> dict[str, list]:
    """Run a request (a JSON array of tasks) in order; returns {"data": [...]} plus "errors" when any failed."""
    if not isinstance(tasks, list) or not tasks:
        raise InvalidParameter("the request must be a non-empty JSON array of tasks", parameter="tasks")
    data, errors = [], []
    seen: set[str] = set()
    for task in tasks:
        try:
            if not isinstance(task, dict):
                raise InvalidParameter("each task must be a JSON object", parameter="taskType")
            task_uuid = task.get("taskUUID")
            if isinstance(task_uuid, str) and task_uuid in seen:
                raise InvalidParameter(f"taskUUID {task_uuid} is used twice in one request", parameter="taskUUID")
            kind = task.get("taskType")
            if kind == "imageMasking":
                parsed = parse_masking_task(task)
                seen.add(parsed.task_uuid)
                data.append(run_masking(parsed, context))
            elif kind == "imageUpload":
                data.append(run_upload(task, context))
                seen.add(task["taskUUID"])
            else:
                raise InvalidParameter(
                    f"unsupported taskType {kind!r}; use imageMasking or imageUpload", parameter="taskType"
                )
        except Exception as exc:  # every task gets an answer; one failure never hides the others
            errors.append(error_entry(exc, task))
    out: dict[str, list] = {"data": data}
    if errors:
        out["errors"] = errors
    return out
