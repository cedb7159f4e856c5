"""Task context for `python -m maskmargin run --remote`: inputs read locally, detection done remotely.

Everything but detection is the local run's (LocalContext and api_tasks): files, URLs and data URIs
are read here, masks are built here at the input's size with the task's padding and blur, and URL
outputs are written to the output folder, so the printed answer has the same format as a local run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..api_tasks import parse_masking_task
from ..detection import ImageDetections
from ..remote.answers import RemoteMask
from ..remote.client import MaskJob, RemoteClient, image_digest
from ..remote.config import RemoteConfig
from ..remote.detector import remote_air, remote_detections, remote_model
from ..settings import MaskSettings
from .local_context import LocalContext


def _key(air: str, settings: MaskSettings, pixels: np.ndarray) -> tuple:
    return air, settings.confidence, settings.max_detections, image_digest(pixels)


class RemoteContext(LocalContext):
    def __init__(self, output_dir: Path, config: RemoteConfig, base_dir: Path | None = None):
        super().__init__(output_dir, base_dir=base_dir)
        self.client = RemoteClient(config)
        self.window = 2 * config.concurrency  # tasks prefetched together: enough to keep every request slot busy
        self._fetched: dict[str, np.ndarray] = {}
        self._ready: dict[tuple, RemoteMask | Exception] = {}

    def close(self) -> None:
        self.client.close()

    def prefetched(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """`tasks` again, each window of them prefetched (sent at once) before its tasks run: a few
        images are held at a time, whatever the number of tasks."""
        it = iter(tasks)
        while window := list(itertools.islice(it, self.window)):
            self._fetched.clear()
            self._ready.clear()
            self.prefetch(window)
            yield from window
        self._fetched.clear()
        self._ready.clear()

    def fetch_image(self, reference: str) -> np.ndarray:
        found = self._fetched.get(reference)
        if found is None:  # read once: prefetch and the task run share it
            found = self._fetched[reference] = super().fetch_image(reference)
        return found

    def prefetch(self, tasks: Any) -> None:
        """Send every valid imageMasking task at once (bounded concurrency) before the tasks run in order.

        Tasks that cannot be prepared (bad fields, an image uploaded by an earlier task) are left to
        the ordinary run, which reports their errors or sends them one by one.
        """
        jobs, keys = [], []
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict) or task.get("taskType") != "imageMasking":
                continue
            try:
                parsed = parse_masking_task(task)
                air = remote_air(parsed.model)
                pixels = self.fetch_image(parsed.input_image)
            except Exception:
                continue
            bare = MaskSettings(parsed.settings.confidence, parsed.settings.max_detections, 0, 0)
            jobs.append(MaskJob(pixels, air, bare))
            keys.append(_key(air, bare, pixels))
        if jobs:
            self._ready.update(zip(keys, self.client.mask_jobs(jobs, return_errors=True)))

    def detect(self, model: str, pixels: np.ndarray, settings: MaskSettings) -> tuple[ImageDetections, float | None]:
        spec = remote_model(model)
        bare = MaskSettings(settings.confidence, settings.max_detections, 0, 0)
        air = remote_air(model)
        found = self._ready.pop(_key(air, bare, pixels), None)
        if found is None:
            found = self.client.mask_images([pixels], air, bare)[0]
        if isinstance(found, Exception):
            raise found
        return remote_detections(found, spec.name), found.cost
