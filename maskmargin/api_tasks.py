"""The Image Masking API's tasks (docs/ARCHITECTURE.md): validation, execution and result shapes.

Transport-free: the command line and the HTTP service give a `TaskContext` that knows how to find
input images, load detectors and publish mask images; everything else is shared.
"""

from __future__ import annotations

import base64
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends.base import Detector
from .detection import ImageDetections
from .errors import InvalidParameter, MaskMarginError
from .images import to_data_uri
from .pipeline import detect_arrays, encoded_mask
from .settings import MaskSettings
from .task_fields import IMAGE_MASKING, IMAGE_UPLOAD, TASK_UUID, read_task, shown
from .task_fields import OUTPUT_FORMATS as OUTPUT_FORMATS  # re-exported: the fronts' choices
from .task_fields import OUTPUT_TYPES as OUTPUT_TYPES

LOCAL_COST = 0.0  # local runs cost nothing; the field exists so clients can read it either way


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
    output_quality: int = 95
    webhook_url: str | None = None
    delivery_method: str = "sync"
    ttl: int | None = None  # seconds a URL output is kept (services); None: as long as the store allows


def check_uuid(value: Any, parameter: str = "taskUUID") -> str:
    return TASK_UUID.read(value, parameter)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def parse_masking_task(task: dict) -> MaskingTask:
    """A validated imageMasking task, flat or in the current schema's `inputs`/`settings` form.

    Fields, defaults and ranges come from `task_fields.IMAGE_MASKING`; a bad value raises
    InvalidParameter naming the field.
    """
    v = read_task(task, IMAGE_MASKING)
    settings = MaskSettings(
        confidence=v["confidence"],
        max_detections=v["maxDetections"],
        mask_padding=v["maskPadding"],
        mask_blur=v["maskBlur"],
    )
    return MaskingTask(
        task_uuid=v["taskUUID"],
        input_image=v["inputImage"],
        model=v["model"],
        settings=settings,
        output_format=v["outputFormat"],
        output_type=v["outputType"],
        include_cost=v["includeCost"],
        upload_endpoint=v["uploadEndpoint"],
        output_quality=v["outputQuality"],
        webhook_url=v["webhookURL"],
        delivery_method=v["deliveryMethod"],
        ttl=v["ttl"],
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
    def publish(self, data: bytes, image_uuid: str, fmt: str, ttl: int | None = None) -> str:
        """Store mask bytes (for `ttl` seconds, where the context forgets) and return outputType URL's URL."""

    @abstractmethod
    def put(self, url: str, data: bytes, fmt: str) -> None:
        """PUT bytes to a client's uploadEndpoint."""

    def detect(self, model: str, pixels: np.ndarray, settings: MaskSettings) -> tuple[ImageDetections, float | None]:
        """One image's detections and what they cost (None: nothing charged, as for local runs).

        A remote context overrides this to send the work to a service and pass its cost on.
        """
        return detect_arrays(self.detector(model), [pixels], settings)[0], None

    def load_image(self, reference: str) -> tuple[np.ndarray, bytes | None]:
        """(pixels, the encoded bytes when the context keeps them) for a reference that is no UUID."""
        return self.fetch_image(reference), None

    def find_image(self, image_uuid: str) -> np.ndarray | None:
        return self.images.get(image_uuid.lower())

    def resolve_image(self, reference: str) -> tuple[str, np.ndarray]:
        """(imageUUID, pixels): a known UUID, or a new UUID for any other reference."""
        if is_uuid(reference):
            found = self.find_image(reference)
            if found is None:
                raise InvalidParameter(
                    f"no image with UUID {reference}: upload it first (imageUpload)", parameter="inputImage"
                )
            return reference, found
        pixels, data = self.load_image(reference)
        return self.store_image(pixels, data), pixels

    def store_image(self, pixels: np.ndarray, data: bytes | None = None) -> str:
        """Keep an image for reuse by UUID (`data`: its encoded bytes, for contexts that keep files)."""
        image_uuid = str(uuid.uuid4())
        self.images[image_uuid] = pixels
        return image_uuid

    def image_url(self, image_uuid: str) -> str | None:
        """Where an uploaded image can be read back (imageUpload's imageURL); None: nowhere."""
        return None


def run_masking(task: MaskingTask, context: TaskContext) -> dict[str, Any]:
    image_uuid, pixels = context.resolve_image(task.input_image)
    found, cost = context.detect(task.model, pixels, task.settings)
    return masking_result(task, image_uuid, found, context, cost)


def masking_result(
    task: MaskingTask, image_uuid: str, found: ImageDetections, context: TaskContext, cost: float | None = None
) -> dict:
    data = encoded_mask(found, task.settings, task.output_format, task.output_quality)
    mask_uuid = str(uuid.uuid4())
    result: dict[str, Any] = {
        "taskType": "imageMasking",
        "taskUUID": task.task_uuid,
        "inputImageUUID": image_uuid,
        "detections": found.to_api(),
        "maskImageUUID": mask_uuid,
    }
    if task.output_type == "URL":
        result["maskImageURL"] = context.publish(data, mask_uuid, task.output_format, task.ttl)
        # not in the API's docs, but ComfyUI's Runware nodes read the mask from imageURL
        result["imageURL"] = result["maskImageURL"]
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
    v = read_task(task, IMAGE_UPLOAD)
    try:
        pixels, data = context.load_image(v["image"])
    except InvalidParameter as exc:  # contexts name the masking field; an upload's field is "image"
        if exc.parameter != "inputImage":
            raise
        raise type(exc)(exc.message.replace("inputImage", "image"), parameter="image") from exc
    image_uuid = context.store_image(pixels, data)
    answer = {"taskType": "imageUpload", "taskUUID": v["taskUUID"], "imageUUID": image_uuid}
    url = context.image_url(image_uuid)
    if url is not None:
        answer["imageURL"] = url
    return answer


def error_dict(code: str, message: str, parameter: str | None = None, task: Any = None) -> dict[str, Any]:
    """One entry of an answer's "errors" array, in the API's shape."""
    task = task if isinstance(task, dict) else {}
    echo = lambda name: task[name] if isinstance(task.get(name), str) else None  # noqa: E731  (never a structure)
    return {
        "code": code,
        "message": message,
        "parameter": parameter,
        "taskType": echo("taskType"),
        "taskUUID": echo("taskUUID"),
    }


def error_entry(exc: Exception, task: Any) -> dict[str, Any]:
    if isinstance(exc, MaskMarginError):
        return error_dict(exc.code, exc.message, exc.parameter, task)
    # a bug or library failure: say so without a traceback
    return error_dict("internalError", f"{type(exc).__name__}: {exc}", None, task)


TaskHandler = Callable[[dict, TaskContext], dict]


def run_task(task: dict, context: TaskContext) -> dict:
    """One imageMasking or imageUpload task's result (raises on failure)."""
    if task.get("taskType") == "imageMasking":
        parsed = parse_masking_task(task)
        if parsed.webhook_url:  # a service posts results to webhooks (service/core.py); a local run prints them
            raise InvalidParameter(
                "webhookURL needs the service (python -m maskmargin serve); leave it out of local runs",
                parameter="webhookURL",
            )
        return run_masking(parsed, context)
    return run_upload(task, context)


def run_tasks(tasks: Any, context: TaskContext, handlers: dict[str, TaskHandler] | None = None) -> dict[str, list]:
    """Run a request (a JSON array of tasks) in order; returns {"data": [...]} plus "errors" when any failed.

    `handlers` (taskType -> handler) add or replace task types: a service answers getResponse and ping
    tasks and runs async deliveries its own way; every other rule (one answer per task, a taskUUID used
    once per request) stays the same.
    """
    if not isinstance(tasks, list) or not tasks:
        raise InvalidParameter("the request must be a non-empty JSON array of tasks", parameter="tasks")
    out: dict[str, list] = {"data": []}
    for kind, entry in iter_answers(tasks, context, handlers):
        out.setdefault(kind, []).append(entry)
    return out


def iter_answers(
    tasks: Iterable[Any], context: TaskContext, handlers: dict[str, TaskHandler] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run tasks in order, yielding ("data", result) or ("errors", error entry) as each one finishes.

    Tasks are taken from `tasks` one at a time, so a stream of tasks runs in bounded memory."""
    table: dict[str, TaskHandler] = {"imageMasking": run_task, "imageUpload": run_task, **(handlers or {})}
    seen: set[str] = set()
    for task in tasks:
        try:
            if not isinstance(task, dict):
                raise InvalidParameter("each task must be a JSON object", parameter="taskType")
            task_uuid = task.get("taskUUID")
            if isinstance(task_uuid, str) and task_uuid in seen:
                raise InvalidParameter(f"taskUUID {task_uuid} is used twice in one request", parameter="taskUUID")
            kind = task.get("taskType")
            handler = table.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise InvalidParameter(
                    f"unsupported taskType {shown(kind)}; use {' or '.join(sorted(table))}", parameter="taskType"
                )
            result = handler(task, context)
            if isinstance(task_uuid, str):
                seen.add(task_uuid)
            yield "data", result
        except Exception as exc:  # every task gets an answer; one failure never hides the others
            yield "errors", error_entry(exc, task)
