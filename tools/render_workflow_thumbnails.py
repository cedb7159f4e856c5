"""Make the example workflows' .jpg thumbnails from real runs in a real ComfyUI.

    COMFYUI_DIR=... [COMFYUI_PYTHON=...] python tools/render_workflow_thumbnails.py

- anonymize_faces runs whole, on the public-domain astronaut photo (scikit-image).
- The detailers need a checkpoint, which this script does not assume: it runs each graph up to Mask
  Margin Crop and shows Image Mask's preview beside the crops the sampler would get. Where a
  workflow's detector needs a YOLO file that is not installed, the closest bundled extra stands in,
  and the thumbnail says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from comfy_harness import start_from_env  # noqa: E402
from workflow_api import to_api  # noqa: E402

STAND_INS = {"hand_yolov8n": "extra_mediapipe_hands", "person_yolov8n-seg": "extra_mediapipe_person_selfie"}
UP_TO_CROP = {
    "LoadImage",
    "MaskMarginDetectorLoader",
    "MaskMarginImageMask",
    "MaskMarginTrackVideo",
    "MaskMarginSelectRegions",
    "MaskMarginCrop",
}
WIDTH = 768


def images_of(server, history: dict, node: str) -> list[Image.Image]:
    entries = history["outputs"].get(node, {}).get("images", [])
    return [Image.open(server.output_dir / e.get("subfolder", "") / e["filename"]).convert("RGB") for e in entries]


def caption(img: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, img.height - 22, img.width, img.height), fill=(0, 0, 0))
    draw.text((8, img.height - 18), text, fill=(255, 255, 255))
    return img


def side_by_side(preview: Image.Image, crops: list[Image.Image]) -> Image.Image:
    h = 384
    left = preview.resize((round(preview.width * h / preview.height), h))
    grid = Image.new("RGB", (h, h), (24, 24, 24))
    for i, crop in enumerate(crops[:4]):
        tile = crop.copy()
        tile.thumbnail((h // 2, h // 2))  # keeps the working size's aspect
        grid.paste(
            tile, ((i % 2) * h // 2 + (h // 2 - tile.width) // 2, (i // 2) * h // 2 + (h // 2 - tile.height) // 2)
        )
    out = Image.new("RGB", (left.width + h, h))
    out.paste(left, (0, 0))
    out.paste(grid, (left.width, 0))
    return out.resize((WIDTH, round(out.height * WIDTH / out.width)))


def pair(before: Image.Image, after: Image.Image) -> Image.Image:
    w = WIDTH // 2
    out = Image.new("RGB", (WIDTH, round(before.height * w / before.width)))
    out.paste(before.resize((w, out.height)), (0, 0))
    out.paste(after.resize((w, out.height)), (w, 0))
    return out


def detailer_thumbnail(server, prompt: dict) -> tuple[Image.Image, str]:
    """Run a detailer up to Mask Margin Crop (the frames of a video: the photo repeated)."""
    graph = {k: v for k, v in prompt.items() if v["class_type"] in UP_TO_CROP}
    source = next((k for k, v in prompt.items() if v["class_type"] in ("LoadImage", "GetVideoComponents")))
    note = ""
    if prompt[source]["class_type"] == "GetVideoComponents":
        graph["900"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
        graph[source] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["900", 0], "amount": 4}}
        note = "frames: the photo repeated; "
    loader = next(v for v in graph.values() if v["class_type"] == "MaskMarginDetectorLoader")
    model = loader["inputs"]["model"]
    if model in STAND_INS:
        loader["inputs"]["model"] = STAND_INS[model]
        note += f"{STAND_INS[model]} standing in for {model}.pt; "
    mask_node = next(k for k, v in graph.items() if v["class_type"] == "MaskMarginImageMask")
    crop_node = next(k for k, v in graph.items() if v["class_type"] == "MaskMarginCrop")
    graph["901"] = {"class_type": "SaveImage", "inputs": {"images": [mask_node, 3], "filename_prefix": "thumb_prev"}}
    graph["902"] = {"class_type": "SaveImage", "inputs": {"images": [crop_node, 0], "filename_prefix": "thumb_crop"}}
    graph["903"] = {"class_type": "PreviewAny", "inputs": {"source": [mask_node, 2]}}
    history = server.run(graph)
    preview, crops = images_of(server, history, "901"), images_of(server, history, "902")
    found = sum(len(boxes) for boxes in json.loads(history["outputs"]["903"]["text"][0]))
    if not found:
        note += "nothing found in this photo, so one placeholder crop; "
    return side_by_side(preview[0], crops), note + "Image Mask preview | crops for the sampler"


def main() -> int:
    from skimage import data

    server = start_from_env()
    try:
        Image.fromarray(data.astronaut()).save(server.input_dir / "example.png")
        info = server.object_info()
        for path in sorted((ROOT / "example_workflows").glob("*.json")):
            prompt = to_api(json.loads(path.read_text()), info)
            if path.stem == "anonymize_faces":
                history = server.run(prompt)
                save = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
                img = pair(Image.fromarray(data.astronaut()), images_of(server, history, save)[0])
                text = "photo | anonymized (a real run of this workflow)"
            else:
                img, text = detailer_thumbnail(server, prompt)
            caption(img, text).save(path.with_suffix(".jpg"), quality=85)
            print(path.with_suffix(".jpg"))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
