"""Command line: `python -m maskmargin run TASKS.json [--remote]`, `batch`, `serve`, `demo`, `download`, `models`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import MaskMarginError

if TYPE_CHECKING:  # the command line imports its heavy parts per command: `--help` stays instant
    from ..loader import ModelDirs

EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskmargin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a JSON array of imageMasking/imageUpload tasks, print the API's answer")
    run.add_argument("tasks", help="JSON file with the task array ('-' for standard input)")
    run.add_argument("--output-dir", default="output", help="where URL outputs are written (default: output)")
    run.add_argument("--models-dir", help="folder with ultralytics/bbox, ultralytics/segm, mediapipe subfolders")
    run.add_argument("--device", help="torch device for YOLO models (default: cuda when available)")
    run.add_argument(
        "--tiles",
        action="store_true",
        help="also search overlapping tiles of each image (2 x 2, finer above 2560 px): finds faces "
        "smaller than about 6%% of the image's longer side, at one detection per tile more "
        "(local runs only)",
    )
    run.add_argument(
        "--remote",
        action="store_true",
        help="detect on the Image Masking API at RUNWARE_API_URL (key: RUNWARE_API_KEY); "
        "masks are still built here, at each input's size",
    )

    srv = sub.add_parser("serve", help="serve the Image Masking API over REST (POST /v1) and WebSocket (GET /v1)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8700, help="port (default: 8700; 0 picks a free one)")
    srv.add_argument(
        "--api-key",
        help="require this key (Bearer header or authentication task); "
        "prefer --api-key-file or MASKMARGIN_SERVICE_KEY, which stay out of the process list",
    )
    srv.add_argument(
        "--api-key-file", help="accept the keys in this file, one per line (a key per user); '#' starts a comment"
    )
    srv.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let URL inputs and uploadEndpoint reach private, loopback and link-local addresses",
    )
    srv.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="allow URLs into this network only (repeatable), e.g. an internal bucket",
    )
    srv.add_argument("--max-body-mb", type=float, default=48, help="largest request body (default: 48)")
    srv.add_argument("--max-pixels", type=int, default=4096 * 4096, help="largest input image in pixels")
    srv.add_argument("--max-tasks", type=int, default=32, help="most tasks per request (default: 32)")
    srv.add_argument("--max-concurrency", type=int, default=4, help="requests worked on at once (default: 4)")
    srv.add_argument(
        "--max-connections", type=int, default=1024, help="open connections at once; more get 503 (default: 1024)"
    )
    srv.add_argument(
        "--timeout",
        type=float,
        default=30,
        help="seconds a request may take to arrive (headers and body) and a URL to be fetched (default: 30)",
    )
    srv.add_argument(
        "--idle-timeout", type=float, default=75, help="seconds an idle connection stays open (default: 75)"
    )
    srv.add_argument(
        "--store-dir",
        help="folder for uploaded images, kept across restarts (default: ~/.cache/maskmargin/service-images)",
    )
    srv.add_argument(
        "--store-mb", type=float, default=1024, help="most megabytes of uploaded images kept (default: 1024)"
    )
    srv.add_argument("--store-days", type=float, default=30, help="days an uploaded image is kept (default: 30)")
    srv.add_argument("--public-url", help="base URL of mask links (default: http://<Host header>)")
    srv.add_argument("--models-dir", help="folder with ultralytics/bbox, ultralytics/segm, mediapipe subfolders")
    srv.add_argument("--device", help="torch device for YOLO models (default: cuda when available)")

    bat = sub.add_parser(
        "batch",
        help="a PNG mask per image of a folder, glob, manifest (.txt/.jsonl of paths or URLs) or video, "
        "and detections.jsonl; resumable; --ray runs it on a Ray cluster",
    )
    bat.add_argument("input", help="a folder (recursive), a glob, a .txt/.jsonl manifest, an image or a video")
    bat.add_argument("output", help="folder for the masks (same relative paths, .png) and detections.jsonl")
    bat.add_argument("--model", required=True, help="a model name or AIR id (see `models`)")
    # the API's knobs; left out, the API's defaults (confidence 0.25, maxDetections 6, maskPadding 4, maskBlur 4)
    bat.add_argument("--confidence", type=float, help="keep detections scoring at least this (0..1)")
    bat.add_argument("--max-detections", type=int, help="keep at most this many per image (1..20)")
    bat.add_argument("--mask-padding", type=int, help="grow (or, negative, shrink) each mask by this many pixels")
    bat.add_argument("--mask-blur", type=int, help="fade-out band outside each mask, in pixels")
    bat.add_argument("--tiles", action="store_true", help="also search overlapping tiles of each image (as run)")
    bat.add_argument("--workers", type=int, default=2, help="worker threads, or Ray actors with --ray (default: 2)")
    bat.add_argument("--batch-size", type=int, default=8, help="images per call of the masker (default: 8)")
    bat.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run as a Ray Data pipeline: on a new local Ray (no ADDRESS) or a cluster (auto, ray://HEAD:10001)",
    )
    bat.add_argument("--no-progress", action="store_true", help="no progress bar")
    bat.add_argument("--models-dir", help="folder with ultralytics/bbox, ultralytics/segm, mediapipe subfolders")
    bat.add_argument("--device", help="torch device (default: cuda when available)")

    demo = sub.add_parser("demo", help="face and eye masks of a public-domain photo, written to a folder")
    demo.add_argument("--output-dir", default="output")

    dl = sub.add_parser(
        "download", help="download a YOLO model file, or `mediapipe` for MediaPipe's files (sha256 checked)"
    )
    dl.add_argument("model", help="a YOLO model name from `models`, e.g. face_yolov8n, or mediapipe")
    dl.add_argument("--wheel-dir", help="mediapipe: keep the downloaded wheel here and reuse it (a cache)")
    dl.add_argument("--models-dir", help="models folder (default: MASKMARGIN_MODELS_DIR or ./models)")

    ls = sub.add_parser("models", help="list the models, their AIR ids and whether their files are present")
    ls.add_argument("--models-dir", help="models folder (default: MASKMARGIN_MODELS_DIR or ./models)")

    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "run":
        return _run(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "batch":
        return _batch(args)
    if args.command == "demo":
        from .demo import run_demo

        for path in run_demo(Path(args.output_dir)):
            print(path)
        return EXIT_OK
    if args.command == "download":
        return _download(args)
    return _models(args.models_dir)


def _dirs(models_dir: str | None) -> ModelDirs:
    from ..loader import ModelDirs

    return ModelDirs.under(models_dir)


def _run(args: argparse.Namespace) -> int:
    """Tasks are read, run and answered one at a time: memory stays flat however many there are."""
    from .stream import TasksFileError, count_tasks, spooled

    name = "standard input" if args.tasks == "-" else args.tasks
    if args.remote and args.tiles:
        print("error: --tiles searches tiles with a local detector; leave it out with --remote", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = spooled(sys.stdin) if args.tasks == "-" else open(args.tasks, encoding="utf-8-sig")  # noqa: SIM115
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with source:
        try:  # the whole file is checked before any task runs: a broken file runs nothing
            total = count_tasks(source, name)
        except TasksFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {name}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if total == 0:
            print("error: the tasks file must hold a non-empty JSON array of task objects", file=sys.stderr)
            return EXIT_USAGE
        source.seek(0)
        return _run_stream(args, source, name)


def _run_stream(args: argparse.Namespace, source: IO[str], name: str) -> int:
    from ..api_tasks import iter_answers
    from .local_context import LocalContext
    from .stream import AnswerWriter, iter_json_array

    # relative file paths in a tasks file are the file's own: it runs the same from any folder
    base_dir = Path.cwd() if args.tasks == "-" else Path(args.tasks).resolve().parent
    tasks = iter_json_array(source, name)
    context: LocalContext
    if args.remote:
        from ..remote.config import RemoteConfig
        from .remote_context import RemoteContext

        try:
            config = RemoteConfig.from_env()
        except MaskMarginError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        context = remote = RemoteContext(Path(args.output_dir), config, base_dir)
        tasks = remote.prefetched(tasks)
    else:
        context = LocalContext(Path(args.output_dir), _dirs(args.models_dir), args.device, args.tiles, base_dir)
    writer = AnswerWriter(sys.stdout)
    try:
        for kind, entry in iter_answers(tasks, context):
            writer.add(kind, entry)
    finally:
        context.close()
    writer.close()
    return EXIT_TASK_FAILED if writer.errors else EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    from ..settings import MaskSettings
    from .batch import BatchInputError, run_batch

    if args.workers < 1 or args.batch_size < 1:
        print("error: --workers and --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        knobs = {
            "confidence": args.confidence,
            "max_detections": args.max_detections,
            "mask_padding": args.mask_padding,
            "mask_blur": args.mask_blur,
        }
        settings = MaskSettings(**{k: v for k, v in knobs.items() if v is not None}, search_tiles=args.tiles)
        done, skipped, errors = run_batch(
            args.input,
            Path(args.output),
            args.model,
            settings,
            models_dir=args.models_dir,
            device=args.device,
            workers=args.workers,
            batch_size=args.batch_size,
            ray_address=args.ray or None,
            use_ray=args.ray is not None,
            progress=not args.no_progress,
        )
    except BatchInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MaskMarginError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{done} images run, {skipped} already done, {errors} errors (see detections.jsonl)", file=sys.stderr)
    return EXIT_TASK_FAILED if errors else EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import logging
    import os

    from ..service.core import ServiceConfig
    from ..service.server import serve
    from ..url_safety import URLPolicy, parse_networks

    if args.api_key is not None and not args.api_key.strip():
        print("error: --api-key is empty: give a key, or leave the option out to serve without one", file=sys.stderr)
        return EXIT_USAGE
    key = args.api_key or os.environ.get("MASKMARGIN_SERVICE_KEY", "").strip() or None
    keys: tuple[str, ...] = ()
    if args.api_key_file:
        try:
            lines = Path(args.api_key_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            print(f"error: cannot read --api-key-file: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        keys = tuple(k for k in (line.split("#", 1)[0].strip() for line in lines) if k)
        if not keys:
            print("error: --api-key-file holds no key", file=sys.stderr)
            return EXIT_USAGE
    limits = (
        args.max_body_mb,
        args.max_pixels,
        args.max_tasks,
        args.max_concurrency,
        args.max_connections,
        args.timeout,
        args.idle_timeout,
        args.store_mb,
        args.store_days,
    )
    if min(limits) <= 0 or not 0 <= args.port <= 65535:
        print("error: --port must be 0..65535 and every --max-*, --store-* and timeout above 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        policy = URLPolicy(
            allow_private=args.allow_private_urls,
            allowed_networks=parse_networks(args.allow_network),
            timeout=args.timeout,
        )
    except MaskMarginError as exc:
        print(f"error: --allow-network: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    config = ServiceConfig(
        host=args.host,
        port=args.port,
        api_key=key,
        api_keys=keys,
        url_policy=policy,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_tasks=args.max_tasks,
        max_concurrency=args.max_concurrency,
        max_connections=args.max_connections,
        request_timeout=args.timeout,
        idle_timeout=args.idle_timeout,
        store_dir=Path(args.store_dir) if args.store_dir else None,
        image_store_bytes=int(args.store_mb * 1024 * 1024),
        image_store_days=args.store_days,
        public_url=args.public_url,
        dirs=_dirs(args.models_dir),
        device=args.device,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        serve(config)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_TASK_FAILED
    return EXIT_OK


def _download(args: argparse.Namespace) -> int:
    from ..download import download_model
    from ..registry import find_model

    if args.model.strip().lower() == "mediapipe":
        return _download_mediapipe(args)
    spec = find_model(args.model)
    if spec is None or not spec.needs_file:
        print(
            f"error: {args.model} is not a downloadable YOLO model (see `python -m maskmargin models`)", file=sys.stderr
        )
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


def _download_mediapipe(args: argparse.Namespace) -> int:
    from ..backends import mediapipe_files

    folder = _dirs(args.models_dir).mediapipe[0]
    try:
        mediapipe_files.download(folder, lambda msg: print(msg, file=sys.stderr, flush=True), args.wheel_dir, True)
    except MaskMarginError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_TASK_FAILED
    print(folder)
    return EXIT_OK


def _models(models_dir: str | None = None) -> int:
    from ..backends import mediapipe_files
    from ..registry import MODELS

    dirs = _dirs(models_dir)
    for spec in MODELS:
        if spec.needs_file:
            state = "present" if dirs.yolo_file(spec) else f"missing: put {spec.file_name} in {dirs.yolo_dirs(spec)[0]}"
        else:
            state = mediapipe_files.status(spec.backend, spec.option, dirs.mediapipe)
        print(f"{spec.name:32} {spec.air or 'extra':14} {spec.masks:48} {state}")
    return EXIT_OK
