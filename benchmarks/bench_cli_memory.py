"""Peak memory of `python -m maskmargin run` against the number of tasks: the CLI streams, so it should stay flat.

Usage: .venv/bin/python benchmarks/bench_cli_memory.py [--counts 100,1000,10000] [--model mediapipe_face_full]

Each run is a fresh `python -m maskmargin run` process on a tasks file of N imageMasking tasks over
five 512x512 public-domain scikit-image photos (every tenth task an inline JPEG data URI, the others
PNG file paths), base64Data PNG masks, padding 4 and blur 4, answer written to a file. Its peak resident
set size comes from the kernel (wait4's ru_maxrss); the ratios to the smallest run are printed
(goal: within 1.2x of the 100-task figure). Exits non-zero only on errors, never on a missed goal.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.2


def photos(folder: Path) -> list[str]:
    paths = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB").resize((512, 512))
        path = folder / f"{name}.png"
        img.save(path)
        paths.append(str(path))
    return paths


def jpeg(path: str) -> bytes:
    buf = io.BytesIO()
    Image.open(path).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def tasks_file(folder: Path, count: int, paths: list[str], model: str) -> Path:
    uris = {p: "data:image/jpeg;base64," + base64.b64encode(jpeg(p)).decode() for p in paths}
    out = folder / f"tasks_{count}.json"
    with out.open("w", encoding="utf-8") as f:  # written as a stream too: the list is never built
        f.write("[")
        for i in range(count):
            path = paths[i % len(paths)]
            task = {
                "taskType": "imageMasking",
                "taskUUID": str(uuid.uuid4()),
                "inputImage": uris[path] if i % 10 == 9 else path,
                "model": model,
                "outputType": "base64Data",
                "outputFormat": "PNG",
                "maskPadding": 4,
                "maskBlur": 4,
            }
            f.write(("," if i else "") + json.dumps(task))
        f.write("]")
    return out


def run(tasks: Path, folder: Path) -> tuple[int, float, int]:
    """(peak RSS in KiB, seconds, results) of one CLI run."""
    answer = folder / (tasks.stem + "_answer.json")
    start = time.monotonic()
    with answer.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maskmargin", "run", str(tasks), "--output-dir", str(folder / "out")],
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{tasks.name}: the CLI exited {code}")
    with answer.open() as f:
        results = sum(1 for line in f if line.startswith('      "taskUUID"'))
    answer.unlink()
    return usage.ru_maxrss, seconds, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument("--model", default="mediapipe_face_full")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = photos(folder)
        rows = []
        for count in counts:
            tasks = tasks_file(folder, count, paths, args.model)
            size = tasks.stat().st_size
            rss, seconds, results = run(tasks, folder)
            tasks.unlink()
            if results != count:
                raise SystemExit(f"{count} tasks gave {results} results")
            rows.append((count, size, rss, seconds))
            print(
                f"{count:>6} tasks ({size / 1e6:7.1f} MB file): peak RSS {rss / 1024:7.1f} MiB, "
                f"{seconds:6.1f} s ({1000 * seconds / count:5.1f} ms/task)",
                flush=True,
            )
    base = rows[0][2]
    print(f"\nsummary (peak RSS ratio to {rows[0][0]} tasks; goal <= {GOAL}x):")
    for count, _, rss, _ in rows:
        print(f"  {count:>6} tasks: {rss / base:.3f}x ({(rss - base) / 1024:+.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
