"""`make demo`: face and eye masks of NASA's public-domain astronaut portrait (shipped in scikit-image)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import torch
from PIL import Image

from .api_tasks import run_tasks
from .local_context import LocalContext
from .loader import load_detector
from .pipeline import MaskSettings, image_mask

DEMO_MODELS = ("mediapipe_face_full", "eyes_mesh_mediapipe")


def run_demo(output_dir: Path) -> list[Path]:
    """Write the photo, one mask and one preview per model, and the API's JSON answer; return the paths."""
    from skimage import data  # demo/test dependency only

    output_dir.mkdir(parents=True, exist_ok=True)
    photo = output_dir / "astronaut.png"
    pixels = data.astronaut()
    Image.fromarray(pixels).save(photo)
    written = [photo]

    tasks = [
        {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": str(photo), "model": model,
         "outputFormat": "PNG", "outputType": "URL"}
        for model in DEMO_MODELS
    ]
    answer = run_tasks(tasks, LocalContext(output_dir))
    if answer.get("errors"):
        raise RuntimeError(f"demo tasks failed: {answer['errors']}")
    (output_dir / "result.json").write_text(json.dumps(answer, indent=2))
    written.append(output_dir / "result.json")

    batch = torch.from_numpy(pixels).float().div(255).unsqueeze(0)
    for model in DEMO_MODELS:
        result = image_mask(load_detector(model), batch, MaskSettings(), with_preview=True)
        for name, tensor in (("mask", result.masks[0]), ("preview", result.preview[0])):
            path = output_dir / f"{model}_{name}.png"
            Image.fromarray((tensor.clamp(0, 1) * 255).round().byte().cpu().numpy()).save(path)
            written.append(path)
    return written
