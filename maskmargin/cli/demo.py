"""`make demo`: face and eye masks of NASA's public-domain astronaut portrait (shipped in scikit-image),
and the zoom loop on it: the face crop at 512x512 and the face pixelated and stitched back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import torch
from PIL import Image

from ..api_tasks import run_tasks
from ..crop import mask_margin_crop
from ..loader import load_detector
from ..pipeline import image_mask
from ..settings import CropSettings, MaskSettings
from ..stitch import inpaint_stitch
from .local_context import LocalContext

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
        {
            "taskType": "imageMasking",
            "taskUUID": str(uuid.uuid4()),
            "inputImage": str(photo),
            "model": model,
            "outputFormat": "PNG",
            "outputType": "URL",
        }
        for model in DEMO_MODELS
    ]
    answer = run_tasks(tasks, LocalContext(output_dir))
    if answer.get("errors"):
        raise RuntimeError(f"demo tasks failed: {answer['errors']}")
    (output_dir / "result.json").write_text(json.dumps(answer, indent=2))
    written.append(output_dir / "result.json")

    batch = torch.from_numpy(pixels).float().div(255).unsqueeze(0)
    images: dict[str, torch.Tensor] = {}
    for model in DEMO_MODELS:
        result = image_mask(load_detector(model), batch, MaskSettings(), with_preview=True)
        assert result.preview is not None  # asked for
        images[f"{model}_mask"], images[f"{model}_preview"] = result.masks[0], result.preview[0]
    # the zoom loop without a checkpoint: crop the face, pixelate the crop, stitch it back
    faces = image_mask(load_detector("mediapipe_face_full"), batch, MaskSettings(mask_padding=12, mask_blur=6))
    crops = mask_margin_crop(batch, faces.masks, CropSettings(512, 512, 8), faces.detections)
    blocks = torch.nn.functional.interpolate(crops.crops.permute(0, 3, 1, 2), size=(20, 20), mode="area")
    pixelated = torch.nn.functional.interpolate(blocks, size=(512, 512), mode="nearest").permute(0, 2, 3, 1)
    images["face_crop"] = crops.crops[0]
    images["anonymized"] = inpaint_stitch(crops, pixelated)[0]
    for name, tensor in images.items():
        path = output_dir / f"{name}.png"
        Image.fromarray((tensor.clamp(0, 1) * 255).round().byte().cpu().numpy()).save(path)
        written.append(path)
    return written
