"""Throughput of the self-hosted service against the same tasks run in-process, in one run.

    python benchmarks/bench_service.py [--tasks 40] [--rounds 3] [--model mediapipe_face_full]

The same imageMasking tasks (512x512 public-domain photos from scikit-image as PNG data URIs,
outputType base64Data, outputFormat PNG, padding 4, blur 4) are run
(1) in-process: `api_tasks.run_tasks` with the service's own task context, one task at a time;
(2) over HTTP to `python -m maskmargin serve` (a separate process on 127.0.0.1, --max-concurrency 4),
    one task per request, with 1 and with 4 requests in flight;
(3) through `RemoteClient.mask_images` (what Image Mask's remote path calls: PNG-encodes the
    pixels, asks for bare shapes) with concurrency 1 and 4.
Rounds are interleaved; the median tasks/s of each is printed, then the overhead per task of the
service at concurrency 1 over the in-process run (milliseconds of HTTP, JSON and base64 per task).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx
import numpy as np
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maskmargin.api_tasks import run_tasks  # noqa: E402
from maskmargin.remote.client import RemoteClient  # noqa: E402
from maskmargin.remote.config import RemoteConfig  # noqa: E402
from maskmargin.service.core import MaskingService, ServiceConfig, ServiceContext  # noqa: E402
from maskmargin.settings import MaskSettings  # noqa: E402

KEY = "bench-key"


def photos() -> list[np.ndarray]:
    out = []
    for name in ("astronaut", "coffee", "chelsea", "camera", "rocket"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        h, w = img.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        out.append(np.asarray(Image.fromarray(img[y : y + side, x : x + side]).resize((512, 512), Image.BILINEAR)))
    return out


def data_uri(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def tasks_for(uris: list[str], n: int, model: str) -> list[dict]:
    return [
        {
            "taskType": "imageMasking",
            "taskUUID": str(uuid.uuid4()),
            "inputImage": uris[i % len(uris)],
            "model": model,
            "maskPadding": 4,
            "maskBlur": 4,
            "outputType": "base64Data",
            "outputFormat": "PNG",
        }
        for i in range(n)
    ]


def start_service() -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASKMARGIN_SERVICE_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskmargin", "serve", "--port", "0", "--max-concurrency", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    if "Image Masking API on" not in line:
        proc.kill()
        raise SystemExit(f"service did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return proc, line.split()[5]


def run_in_process(service: MaskingService, tasks: list[dict]) -> float:
    start = time.perf_counter()
    for t in tasks:
        answer = run_tasks([t], ServiceContext(service, "http://127.0.0.1"))
        assert "errors" not in answer, answer
    return len(tasks) / (time.perf_counter() - start)


def run_http(url: str, tasks: list[dict], concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(t: dict) -> None:
            r = client.post(url, content=json.dumps([t]), headers=headers)
            assert r.status_code == 200, r.text[:200]

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, tasks))
        return len(tasks) / (time.perf_counter() - start)


def run_client(url: str, images: list[np.ndarray], n: int, model: str, concurrency: int) -> float:
    batch = [images[i % len(images)] for i in range(n)]
    # fresh client each round: no upload cache, every image goes over the wire as a data URI
    with RemoteClient(RemoteConfig(api_url=url, api_key=KEY, concurrency=concurrency)) as client:
        start = time.perf_counter()
        client.mask_images(batch, model, MaskSettings(0.25, 6, 0, 0))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40, help="tasks per measurement (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--model", default="mediapipe_face_full")
    args = parser.parse_args()

    images = photos()
    uris = [data_uri(p) for p in images]
    local = MaskingService(ServiceConfig())
    proc, url = start_service()
    print(
        f"service: {url} (separate process, --max-concurrency 4); {os.cpu_count()} CPU cores; "
        f"{args.tasks} tasks x {args.rounds} rounds, model {args.model}, 512x512 photos"
    )
    try:
        # warm-up: models loaded once on both sides, connections open
        run_in_process(local, tasks_for(uris, 5, args.model))
        run_http(url, tasks_for(uris, 5, args.model), 1)
        results: dict[str, list[float]] = {
            k: [] for k in ("in-process", "service c=1", "service c=4", "client c=1", "client c=4")
        }
        for _ in range(args.rounds):
            results["in-process"].append(run_in_process(local, tasks_for(uris, args.tasks, args.model)))
            results["service c=1"].append(run_http(url, tasks_for(uris, args.tasks, args.model), 1))
            results["service c=4"].append(run_http(url, tasks_for(uris, args.tasks, args.model), 4))
            results["client c=1"].append(run_client(url, images, args.tasks, args.model, 1))
            results["client c=4"].append(run_client(url, images, args.tasks, args.model, 4))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    med = {k: statistics.median(v) for k, v in results.items()}
    base = med["in-process"]
    print(f"\n{'run':<14}{'tasks/s (median)':>18}{'ms/task':>10}{'vs in-process':>15}   rounds")
    for name, value in med.items():
        rounds = ", ".join(f"{v:.1f}" for v in results[name])
        print(f"{name:<14}{value:>18.1f}{1000 / value:>10.1f}{value / base:>14.2f}x   [{rounds}]")
    print(f"\noverhead per task, service c=1 over in-process: {1000 / med['service c=1'] - 1000 / base:.1f} ms")
    print(f"overhead per task, RemoteClient c=1 over in-process: {1000 / med['client c=1'] - 1000 / base:.1f} ms")
    print(
        f"speed-up from 4 requests in flight: service {med['service c=4'] / med['service c=1']:.2f}x, "
        f"client {med['client c=4'] / med['client c=1']:.2f}x"
    )


if __name__ == "__main__":
    main()
