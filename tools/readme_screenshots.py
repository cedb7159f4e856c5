"""Take the README's screenshots (docs/screenshots/*.png) from ComfyUI's real frontend.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/python python tools/readme_screenshots.py

Starts a throwaway ComfyUI with this pack (tests/comfy_harness.py), drives Debian's chromium through
tests/browser/driver.mjs (the browser test's driver: `npm --prefix tests/browser ci` first), then crops
the shots to what they show, scales them to at most 1400 px wide and stores them as 256-colour PNGs.
The photo is scikit-image's public-domain astronaut.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from comfy_harness import start_from_env  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
MAX_WIDTH = 1400


def save(image: Image.Image, name: str) -> Path:
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.Resampling.LANCZOS)
    path = OUT / f"{name}.png"
    image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    print(f"{path.relative_to(ROOT)}: {image.width}x{image.height}, {path.stat().st_size // 1024} KiB")
    return path


def crop(path: str, box: dict, pad: int = 24) -> Image.Image:
    image = Image.open(path)
    left, top = max(0, int(box["x"]) - pad), max(0, int(box["y"]) - pad)
    right = min(image.width, int(box["x"] + box["width"]) + pad)
    bottom = min(image.height, int(box["y"] + box["height"]) + pad)
    return image.crop((left, top, right, bottom))


def main() -> int:
    from skimage import data

    work = Path(tempfile.mkdtemp(prefix="maskmargin-screenshots-"))
    server = start_from_env(base_dir=work / "comfyui")
    try:
        Image.fromarray(data.astronaut()).save(server.input_dir / "example.png")
        workflows = {
            name: json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())
            for name in ("face_detailer_sd15", "anonymize_faces")
        }
        job = work / "job.json"
        job.write_text(
            json.dumps(
                {
                    "url": server.url,
                    "out": str(work),
                    "chromium": shutil.which("chromium"),
                    "workflows": workflows,
                    "run": "anonymize_faces",
                    "apiKey": "screenshot-placeholder-key",
                }
            )
        )
        done = subprocess.run(
            ["node", str(ROOT / "tests" / "browser" / "driver.mjs"), str(job)],
            cwd=ROOT / "tests" / "browser",
            capture_output=True,
            text=True,
            timeout=600,
        )
        report = json.loads(done.stdout or "{}")
        if done.returncode or report.get("fatal"):
            print(done.stderr[-3000:], report.get("fatal"), file=sys.stderr)
            return 1
    finally:
        server.stop(remove_base=False)
    OUT.mkdir(parents=True, exist_ok=True)
    detailer = report["workflows"]["face_detailer_sd15"]
    save(crop(detailer["screenshot"], detailer["nodesBox"]), "face_detailer_workflow")
    save(crop(report["run"]["screenshot"], report["run"]["nodesBox"]), "anonymize_after_run")
    save(Image.open(report["picker"]["screenshot"]), "model_picker")
    save(Image.open(report["apiKey"]["screenshot"]), "api_key_setting")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
