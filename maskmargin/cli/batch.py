"""`python -m maskmargin batch INPUT OUTPUT --model M`: a mask per image of a folder, glob, manifest or video.

OUTPUT gets one PNG mask per image at the image's relative path (suffix .png) and `detections.jsonl`, one
line per image (`path`, `width`, `height`, `detections` in the API's shape, `model`, `settings`; or
`path` and `error`). Every image goes through `maskmargin.batch.MaskMarginMasker`, on a few local threads
(the engine's `workers.in_order`) or, with `--ray`, as a Ray Data pipeline: one implementation either way.

Resumable: an image whose line says it worked with the same model and settings, and whose mask file is
there, is skipped. A mask is written (to a temporary name, then renamed) before its line, and each line is
flushed as it is written, so a killed run loses at most the images in flight.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..batch import BatchSettings, MaskMarginMasker
from ..settings import MaskSettings

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
DETECTIONS_FILE = "detections.jsonl"
RAY_INSTALL = "batch --ray needs Ray: pip install 'maskmargin[ray]' (or pip install 'ray[data]==2.60.0')"


class BatchInputError(Exception):
    """An INPUT that names no images (or names two images with one mask path): nothing runs."""


@dataclass(frozen=True)
class Item:
    key: str  # the image's relative path in OUTPUT (POSIX separators)
    source: str  # what MaskMarginMasker reads: a file path or URL


def gather(input_spec: str) -> list[Item]:
    """The images INPUT names, in a stable order: a folder (recursive), a glob, a .txt/.jsonl manifest."""
    path = Path(input_spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        items = [Item(p.relative_to(path).as_posix(), str(p.resolve())) for p in files]
    elif path.is_file() and path.suffix.lower() in (".txt", ".jsonl"):
        items = _manifest(path)
    elif glob.has_magic(input_spec):
        root = Path(_glob_root(input_spec))
        files = sorted(Path(p) for p in glob.glob(input_spec, recursive=True) if Path(p).is_file())
        items = [Item(p.resolve().relative_to(root.resolve()).as_posix(), str(p.resolve())) for p in files]
    elif path.is_file():
        items = [Item(path.name, str(path.resolve()))]
    else:
        raise BatchInputError(f"INPUT {input_spec} is no folder, glob, manifest (.txt, .jsonl), image or video")
    if not items:
        raise BatchInputError(f"INPUT {input_spec} names no images ({', '.join(IMAGE_SUFFIXES)})")
    seen: dict[str, str] = {}
    for item in items:
        other = seen.setdefault(mask_name(item.key), item.key)
        if other != item.key:
            raise BatchInputError(f"{other} and {item.key} would both write the mask {mask_name(item.key)}")
    return items


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return str(Path(*fixed)) if fixed else "."


def _manifest(path: Path) -> list[Item]:
    """One path or URL a line (a .jsonl line: a JSON string or an object with "path"); relative paths are
    the manifest's own (taken from its folder), and so are their keys; '#' lines and blank lines are skipped."""
    items = []
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if path.suffix.lower() == ".jsonl":
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise BatchInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
                value = value.get("path") if isinstance(value, dict) else value
                if not isinstance(value, str) or not value:
                    raise BatchInputError(f'{path}:{number}: expected a path string or {{"path": ...}}')
                text = value
            items.append(_manifest_item(path.parent, text))
    return items


def _manifest_item(base: Path, text: str) -> Item:
    if text.startswith(("http://", "https://", "s3://", "gs://")):
        scheme, _, rest = text.partition("://")
        return Item(rest.split("?", 1)[0].strip("/"), text)
    p = Path(text).expanduser()
    if p.is_absolute():
        return Item(p.as_posix().lstrip("/"), str(p))
    return Item(p.as_posix(), str((base / p).resolve()))


def mask_name(key: str) -> str:
    return str(Path(key).with_suffix(".png").as_posix())


def finished(output: Path, settings: BatchSettings) -> set[str]:
    """Keys whose detections.jsonl line says they worked with these settings and whose mask file exists.

    A line cut short by a killed run is no line."""
    done: set[str] = set()
    try:
        lines = open(output / DETECTIONS_FILE, encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        return done
    with lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (
                isinstance(entry, dict)
                and "error" not in entry
                and entry.get("model") == settings.model
                and entry.get("settings") == settings.to_json()
                and (output / mask_name(entry.get("path", ""))).is_file()
            ):
                done.add(entry["path"])
    return done


class ResultWriter:
    """Writes each result row: the mask (atomically), then its detections.jsonl line, flushed."""

    def __init__(self, output: Path, settings: BatchSettings):
        self.output = output
        self.settings = settings
        self.errors = 0
        output.mkdir(parents=True, exist_ok=True)
        path = output / DETECTIONS_FILE
        self.lines: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if path.stat().st_size and not _ends_with_newline(path):  # a line cut short by a killed run
            self.lines.write("\n")

    def write(self, key: str, row: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"path": key}
        if row["error"]:
            self.errors += 1
            entry["error"] = str(row["error"])
        else:
            target = self.output / mask_name(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(bytes(row["mask"]))
            os.replace(partial, target)
            entry.update(
                width=int(row["width"]),
                height=int(row["height"]),
                detections=json.loads(str(row["detections"])),
                mask=mask_name(key),
            )
        entry.update(model=self.settings.model, settings=self.settings.to_json())
        self.lines.write(json.dumps(entry) + "\n")
        self.lines.flush()

    def close(self) -> None:
        self.lines.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def rows(batch: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    for i in range(len(batch["path"])):
        yield {name: column[i] for name, column in batch.items()}


def run_local(masker: MaskMarginMasker, items: list[Item], batch_size: int, workers: int) -> Iterator[dict]:
    """Result rows of MaskMarginMasker over `items`, a batch per worker thread, in order."""
    from ..workers import in_order

    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]

    def one(chunk: list[Item]) -> dict[str, np.ndarray]:  # the masker reads each file on its worker thread
        return masker({"path": np.array([item.source for item in chunk], dtype=object)})

    with in_order(one, chunks, workers) as results:
        for batch in results:
            yield from rows(batch)


def video_frames(path: Path, skip: set[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(key, RGB frame) for each frame of a video not in `skip`; keys are `<video stem>/<frame:06d>.png`."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise BatchInputError(f"cannot open the video {path}")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            key = f"{path.stem}/{index:06d}.png"
            index += 1
            if key not in skip:
                yield key, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def frame_count(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()


def run_video(
    masker: MaskMarginMasker, frames: Iterator[tuple[str, np.ndarray]], batch_size: int, workers: int
) -> Iterator[dict]:
    """Result rows for a video's frames, decoded here as they are needed (bounded memory), a batch per thread."""
    from itertools import islice

    from ..workers import in_order

    def chunks() -> Iterator[list[tuple[str, np.ndarray]]]:
        while chunk := list(islice(frames, batch_size)):
            yield chunk

    def one(chunk: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
        images = np.empty(len(chunk), dtype=object)
        images[:] = [frame for _, frame in chunk]
        return masker({"path": np.array([key for key, _ in chunk], dtype=object), "image": images})

    with in_order(one, chunks(), workers) as results:
        for batch in results:
            yield from rows(batch)


def run_ray(
    address: str | None, items: list[Item], masker_kwargs: dict[str, Any], batch_size: int, workers: int
) -> Iterator[dict]:
    """The same rows from a Ray Data pipeline: read -> map_batches(MaskMarginMasker) -> here, streamed."""
    try:
        import ray
    except ImportError:
        raise BatchInputError(RAY_INSTALL) from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    sources = [item.source for item in items]
    ds: Any
    if any(s.startswith(("http://", "https://")) for s in sources):
        ds = ray.data.from_items([{"path": s} for s in sources])  # the masker fetches URLs itself
    else:  # reading is I/O: it takes no CPU from the maskers (with both on the CPUs, N maskers on N CPUs starve it)
        ds = ray.data.read_binary_files(sources, include_paths=True, num_cpus=0)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    masks = ds.map_batches(
        MaskMarginMasker,
        fn_constructor_kwargs=masker_kwargs,
        concurrency=workers,
        batch_size=batch_size,
        batch_format="numpy",
        num_gpus=gpus,
    )
    for batch in masks.iter_batches(batch_size=None, batch_format="numpy"):
        yield from rows(batch)


def run_batch(
    input_spec: str,
    output: Path,
    model: str,
    settings: MaskSettings,
    *,
    models_dir: str | None = None,
    device: str | None = None,
    workers: int = 2,
    batch_size: int = 8,
    ray_address: str | None = None,
    use_ray: bool = False,
    progress: bool = True,
) -> tuple[int, int, int]:
    """(images done, images skipped as finished before, error lines) for one batch run."""
    from tqdm import tqdm

    batch_settings = BatchSettings(model, settings)
    done = finished(output, batch_settings)
    video = Path(input_spec)
    if video.is_file() and video.suffix.lower() in VIDEO_SUFFIXES:
        if use_ray:
            raise BatchInputError(
                "a video runs without --ray for now: give --ray a folder of its frames "
                "(e.g. ffmpeg -i clip.mp4 frames/%06d.png)"
            )
        return _run_video(video, output, batch_settings, done, batch_size, workers, progress, models_dir, device)
    items = gather(input_spec)
    pending = [item for item in items if item.key not in done]
    by_source = {item.source: item.key for item in pending}
    kwargs = _masker_kwargs(batch_settings, models_dir, device)
    writer = ResultWriter(output, batch_settings)
    bar = tqdm(total=len(items), initial=len(items) - len(pending), unit="img", disable=not progress, file=sys.stderr)
    count = 0
    try:
        if not pending:
            return 0, len(items), 0
        if use_ray:
            results = run_ray(ray_address, pending, kwargs, batch_size, workers)
        else:
            results = run_local(MaskMarginMasker(**kwargs), pending, batch_size, workers)
        for row in results:
            writer.write(_key(by_source, str(row["path"])), row)
            count += 1
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return count, len(items) - len(pending), writer.errors


def _key(by_source: dict[str, str], path: str) -> str:
    """The item a result row is for: Ray's file readers may give a local path without its leading '/'."""
    if path in by_source:
        return by_source[path]
    return by_source["/" + path]


def _masker_kwargs(settings: BatchSettings, models_dir: str | None, device: str | None) -> dict[str, Any]:
    s = settings.mask
    return dict(
        model=settings.model,
        confidence=s.confidence,
        max_detections=s.max_detections,
        mask_padding=s.mask_padding,
        mask_blur=s.mask_blur,
        tiles=s.search_tiles,
        models_dir=models_dir,
        device=device,
    )


def _run_video(
    video: Path,
    output: Path,
    settings: BatchSettings,
    done: set[str],
    batch_size: int,
    workers: int,
    progress: bool,
    models_dir: str | None,
    device: str | None,
) -> tuple[int, int, int]:
    from tqdm import tqdm

    frames = video_frames(video, done)
    skipped = sum(1 for key in done if key.startswith(f"{video.stem}/"))
    masker = MaskMarginMasker(**_masker_kwargs(settings, models_dir, device))
    writer = ResultWriter(output, settings)
    bar = tqdm(total=frame_count(video) or None, initial=skipped, unit="img", disable=not progress, file=sys.stderr)
    count = 0
    try:
        for row in run_video(masker, frames, batch_size, workers):
            writer.write(str(row["path"]), row)
            count += 1
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return count, skipped, writer.errors
