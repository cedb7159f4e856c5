"""Throughput and latency of the self-hosted service over REST and WebSocket against the in-process call.

    python benchmarks/bench_service.py [--tasks 48] [--rounds 3] [--model mediapipe_face_full]

The same imageMasking tasks (the 512x512 astronaut from scikit-image as a PNG data URI, outputType
base64Data, outputFormat PNG, padding 4, blur 4), one task per request, with 1, 4 and 16 requests in
flight, are run
(1) in-process: `MaskingService.handle` (the core both transports call: JSON, key, tasks, answer) from
    that many threads, no sockets;
(2) over REST: `POST /v1` to `python -m maskmargin serve` (a separate process on 127.0.0.1, its default
    --max-concurrency 4), a keep-alive `http.client` connection per thread;
(3) over WebSocket: one authenticated connection to the same service, that many frames in flight, results
    matched by taskUUID (as Runware's SDKs do).
Request bodies are built before timing. Rounds are interleaved; per run the median requests/s over
rounds and the p50/p99 latency over all requests are printed, then each transport's throughput as a
ratio of the in-process one at the same concurrency (the issue's goal: REST at 4 >= 0.9x, WebSocket no
slower than REST).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx
import numpy as np
import websockets
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maskmargin.service.core import MaskingService, ServiceConfig  # noqa: E402

KEY = "bench-key"
CONCURRENCY = (1, 4, 16)


def astronaut_uri() -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bodies(uri: str, n: int, model: str) -> list[tuple[str, bytes]]:
    """(taskUUID, the request's JSON bytes) for n one-task requests."""
    out = []
    for _ in range(n):
        task_uuid = str(uuid.uuid4())
        task = {
            "taskType": "imageMasking",
            "taskUUID": task_uuid,
            "inputImage": uri,
            "model": model,
            "maskPadding": 4,
            "maskBlur": 4,
            "outputType": "base64Data",
            "outputFormat": "PNG",
        }
        out.append((task_uuid, json.dumps([task]).encode()))
    return out


def start_service(store: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASKMARGIN_SERVICE_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskmargin", "serve", "--port", "0", "--store-dir", store],
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


def timed_pool(work, items: list, concurrency: int) -> tuple[float, list[float]]:
    """(requests/s, latencies in s) of `work(item)` over items with `concurrency` threads."""
    latencies: list[float] = []

    def one(item) -> None:
        t0 = time.perf_counter()
        work(item)
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    return len(items) / (time.perf_counter() - start), latencies


def run_in_process(service: MaskingService, items: list, concurrency: int) -> tuple[float, list[float]]:
    def work(item: tuple[str, bytes]) -> None:
        status, payload, _ = service.handle(item[1], f"Bearer {KEY}", "http://127.0.0.1")
        assert status == 200, payload

    return timed_pool(work, items, concurrency)


def run_rest(url: str, items: list, concurrency: int) -> tuple[float, list[float]]:
    """A keep-alive `http.client` connection per thread (httpx's own overhead capped 16 threads at ~40 req/s)."""
    parsed = httpx.URL(url)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    local = threading.local()

    def work(item: tuple[str, bytes]) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=120)
        local.conn.request("POST", parsed.path, body=item[1], headers=headers)
        response = local.conn.getresponse()
        body = response.read()
        assert response.status == 200, body[:200]

    return timed_pool(work, items, concurrency)


def run_websocket(url: str, items: list, concurrency: int) -> tuple[float, list[float]]:
    async def go() -> tuple[float, list[float]]:
        async with websockets.connect(url.replace("http://", "ws://"), max_size=None) as ws:
            await ws.send(json.dumps([{"taskType": "authentication", "apiKey": KEY}]))
            json.loads(await ws.recv())
            waiting: dict[str, asyncio.Future] = {}

            async def reader() -> None:
                async for frame in ws:
                    answer = json.loads(frame)
                    assert "errors" not in answer, answer
                    for item in answer["data"]:
                        waiting.pop(item["taskUUID"]).set_result(None)

            reading = asyncio.create_task(reader())
            gate = asyncio.Semaphore(concurrency)
            latencies: list[float] = []

            async def one(item: tuple[str, bytes]) -> None:
                async with gate:
                    done = asyncio.get_running_loop().create_future()
                    waiting[item[0]] = done
                    t0 = time.perf_counter()
                    await ws.send(item[1].decode())
                    await done
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(one(item) for item in items))
            rate = len(items) / (time.perf_counter() - start)
            reading.cancel()
            return rate, latencies

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=48, help="requests per measurement (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--model", default="mediapipe_face_full")
    args = parser.parse_args()

    uri = astronaut_uri()
    with tempfile.TemporaryDirectory() as store_a, tempfile.TemporaryDirectory() as store_b:
        local = MaskingService(ServiceConfig(api_key=KEY, store_dir=Path(store_a)))
        proc, url = start_service(store_b)
        print(
            f"service: {url} (separate process, --max-concurrency 4); {os.cpu_count()} CPU cores; "
            f"{args.tasks} requests x {args.rounds} rounds per run, model {args.model}, 512x512 astronaut"
        )
        runs = {"in-process": run_in_process, "REST": run_rest, "WebSocket": run_websocket}
        rates: dict[tuple[str, int], list[float]] = {}
        latencies: dict[tuple[str, int], list[float]] = {}
        try:
            run_in_process(local, bodies(uri, 6, args.model), 2)  # warm-up: models loaded, pages touched
            run_rest(url, bodies(uri, 6, args.model), 2)
            run_websocket(url, bodies(uri, 6, args.model), 2)
            for _ in range(args.rounds):
                for c in CONCURRENCY:
                    for name, run in runs.items():
                        target = local if name == "in-process" else url
                        rate, lat = run(target, bodies(uri, args.tasks, args.model), c)  # type: ignore[arg-type]
                        rates.setdefault((name, c), []).append(rate)
                        latencies.setdefault((name, c), []).extend(lat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            local.close()

    print(f"\n{'run':<12}{'c':>4}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs in-process':>15}   rounds (req/s)")
    for c in CONCURRENCY:
        base = statistics.median(rates["in-process", c])
        for name in runs:
            rate = statistics.median(rates[name, c])
            lat = np.asarray(latencies[name, c]) * 1000
            print(
                f"{name:<12}{c:>4}{rate:>9.1f}{np.percentile(lat, 50):>9.1f}{np.percentile(lat, 99):>9.1f}"
                f"{rate / base:>14.2f}x   [{', '.join(f'{r:.1f}' for r in rates[name, c])}]"
            )
    rest4, inproc4 = statistics.median(rates["REST", 4]), statistics.median(rates["in-process", 4])
    print(f"\nREST at concurrency 4: {rest4 / inproc4:.2f}x the in-process throughput (goal >= 0.90x)")
    for c in CONCURRENCY:
        ws, rest = statistics.median(rates["WebSocket", c]), statistics.median(rates["REST", c])
        print(f"WebSocket / REST at concurrency {c}: {ws / rest:.2f}x (goal >= 1.00x)")


if __name__ == "__main__":
    main()
