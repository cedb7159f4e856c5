"""Command line: `python -m maskmargin run TASKS.json`, `demo`, `download`, `models`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import MaskMarginError

EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskmargin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a JSON array of imageMasking/imageUpload tasks, print the API's answer")
    run.add_argument("tasks", help="JSON file with the task array ('-' for standard input)")
    run.add_argument("--output-dir", default="output", help="where URL outputs are written (default: output)")
    run.add_argument("--models-dir", help="folder with ultralytics/bbox, ultralytics/segm, mediapipe subfolders")
    run.add_argument("--device", help="torch device for YOLO models (default: cuda when available)")

    demo = sub.add_parser("demo", help="face and eye masks of a public-domain photo, written to a folder")
    demo.add_argument("--output-dir", default="output")

    dl = sub.add_parser("download", help="download a YOLO model file, verifying its SHA-256")
    dl.add_argument("model", help="a YOLO model name from `models`, e.g. face_yolov8n")
    dl.add_argument("--models-dir", help="models folder (default: MASKMARGIN_MODELS_DIR or ./models)")

    sub.add_parser("models", help="list the models, their AIR ids and whether their files are present")

    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "run":
        return _run(args)
    if args.command == "demo":
        from .demo import run_demo

        for path in run_demo(Path(args.output_dir)):
            print(path)
        return EXIT_OK
    if args.command == "download":
        return _download(args)
    return _models()


def _dirs(models_dir: str | None):
    from .loader import ModelDirs

    if not models_dir:
        return ModelDirs()
    root = Path(models_dir)
    return ModelDirs((root / "ultralytics" / "bbox",), (root / "ultralytics" / "segm",), (root / "mediapipe",))


def _run(args: argparse.Namespace) -> int:
    from .api_tasks import run_tasks
    from .local_context import LocalContext

    try:
        text = sys.stdin.read() if args.tasks == "-" else Path(args.tasks).read_text(encoding="utf-8")
        tasks = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.tasks}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except json.JSONDecodeError as exc:
        print(f"error: {args.tasks} is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(tasks, list) or not tasks:
        print("error: the tasks file must hold a non-empty JSON array of task objects", file=sys.stderr)
        return EXIT_USAGE
    context = LocalContext(Path(args.output_dir), _dirs(args.models_dir), args.device)
    answer = run_tasks(tasks, context)
    print(json.dumps(answer, indent=2))
    return EXIT_TASK_FAILED if answer.get("errors") else EXIT_OK


def _download(args: argparse.Namespace) -> int:
    from .download import download_model
    from .registry import find_model

    spec = find_model(args.model)
    if spec is None or not spec.needs_file:
        print(f"error: {args.model} is not a downloadable YOLO model (see `python -m maskmargin models`)",
              file=sys.stderr)
        return EXIT_USAGE
    folder = _dirs(args.models_dir).yolo_dirs(spec)[0]

    def progress(done: int, total: int | None) -> None:
        share = f"{100 * done / total:5.1f}%" if total else f"{done} bytes"
        print(f"\r{spec.file_name}: {share}", end="", file=sys.stderr, flush=True)

    try:
        path = download_model(spec, folder, progress=progress)
    except MaskMarginError as exc:
        print(f"\nerror: {exc.message}", file=sys.stderr)
        return EXIT_TASK_FAILED
    print(f"\n{path}")
    return EXIT_OK


def _models() -> int:
    from .loader import ModelDirs
    from .registry import MODELS

    dirs = ModelDirs()
    for spec in MODELS:
        if spec.needs_file:
            present = any((d / spec.file_name).is_file() for d in dirs.yolo_dirs(spec))
            state = "present" if present else f"missing: put {spec.file_name} in {dirs.yolo_dirs(spec)[0]}"
        else:
            state = "bundled with mediapipe"
        print(f"{spec.name:32} {spec.air or 'extra':14} {spec.masks:48} {state}")
    return EXIT_OK
