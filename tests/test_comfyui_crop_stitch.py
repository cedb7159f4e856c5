"""Mask Margin Crop and Inpaint Stitch inside a real ComfyUI (skipped without COMFYUI_DIR)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import ASTRONAUT
from PIL import Image
from workflow_api import to_api

from maskmargin.loader import load_detector
from maskmargin.pipeline import image_mask
from maskmargin.settings import MaskSettings

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "example_workflows").glob("*.json"))


def group_photo() -> np.ndarray:
    """512 x 512: four astronaut heads, two of them mirrored (a second photo with several faces)."""
    head = np.asarray(Image.fromarray(ASTRONAUT[10:250, 110:330]).resize((256, 256)))
    row = np.concatenate([head, head[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([row[:, ::-1], row], axis=0))


def engine_masks(photos, model, settings):
    batch = torch.from_numpy(np.stack(photos)).float().div(255)
    return image_mask(load_detector(model), batch, settings).masks.numpy()


@pytest.fixture(scope="module")
def photos(comfy):
    astro, group = ASTRONAUT, group_photo()
    Image.fromarray(astro).save(comfy.input_dir / "example.png")
    Image.fromarray(group).save(comfy.input_dir / "group.png")
    return astro, group


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_uses_only_known_nodes_and_valid_choices(comfy, path):
    workflow = json.loads(path.read_text())
    info = comfy.object_info()
    prompt = to_api(workflow, info)  # raises on a node type this ComfyUI lacks
    assert (path.with_suffix(".jpg")).is_file(), "every example has a same-name thumbnail"
    for node in prompt.values():
        if not node["class_type"].startswith("MaskMargin"):
            continue
        specs = {
            **info[node["class_type"]]["input"]["required"],
            **info[node["class_type"]]["input"].get("optional", {}),
        }
        for name, value in node["inputs"].items():
            kind = specs[name][0]
            options = kind if isinstance(kind, list) else specs[name][1].get("options") if kind == "COMBO" else None
            if options is not None:
                assert value in options, f"{path.name}: {node['class_type']}.{name} = {value!r} is not offered"


def test_anonymize_workflow_runs_end_to_end(comfy, photos):
    astro, _ = photos
    workflow = json.loads((WORKFLOWS[0].parent / "anonymize_faces.json").read_text())
    prompt = to_api(workflow, comfy.object_info())
    history = comfy.run(prompt)
    (out,) = [
        img
        for node, spec in prompt.items()
        if spec["class_type"] == "SaveImage"
        for img in comfy.saved_images(history, node)
    ]
    assert out.shape == astro.shape
    mask_node = next(spec for spec in prompt.values() if spec["class_type"] == "MaskMarginImageMask")["inputs"]
    mask = engine_masks(
        [astro],
        "mediapipe_face_full",
        MaskSettings(
            mask_node["confidence"], mask_node["max_detections"], mask_node["mask_padding"], mask_node["mask_blur"]
        ),
    )[0]
    diff = np.abs(out.astype(np.int16) - astro.astype(np.int16))
    assert diff[mask == 0].max() <= 1, "outside the mask: the photo (SaveImage truncates 255*x)"
    assert diff[mask == 1].mean() > 10, "the face is changed"
    core = (mask[:, 1:] == 1) & (mask[:, :-1] == 1)

    def flat(img):  # share of horizontal neighbours in the face that are (almost) equal
        step = np.abs(np.diff(img.astype(np.int16), axis=1)).max(axis=-1)
        return (step[core] <= 2).mean()

    assert flat(out) > 0.75 and flat(astro) < 0.5, "the face is made of flat pixel blocks"


def test_crop_invert_stitch_on_a_batch_changes_only_masked_pixels(comfy, photos):
    astro, group = photos
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "group.png"}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "MaskMarginDetectorLoader", "inputs": {"model": "mediapipe_face_full"}},
        "5": {
            "class_type": "MaskMarginImageMask",
            "inputs": {
                "image": ["3", 0],
                "detector": ["4", 0],
                "confidence": 0.25,
                "max_detections": 10,
                "mask_padding": 6,
                "mask_blur": 6,
            },
        },
        "6": {
            "class_type": "MaskMarginCrop",
            "inputs": {
                "image": ["3", 0],
                "mask": ["5", 0],
                "detections": ["5", 1],
                "mask_margin": 32,
                "working_size": "512x512 (SD1.5)",
                "custom_width": 768,
                "custom_height": 768,
                "min_region_size": 8,
                "merge_overlapping": False,
            },
        },
        "7": {"class_type": "ImageInvert", "inputs": {"image": ["6", 0]}},
        "8": {"class_type": "MaskMarginStitch", "inputs": {"stitch": ["6", 2], "image": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "mm_inverted"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "mm_crops"}},
    }
    history = comfy.run(graph)
    outs = comfy.saved_images(history, "9")
    crops = comfy.saved_images(history, "10")
    masks = engine_masks([astro, group], "mediapipe_face_full", MaskSettings(0.25, 10, 6, 6))
    assert len(outs) == 2 and len(crops) == 1 + 4, "one crop per face: 1 + 4"
    assert all(c.shape == (512, 512, 3) for c in crops)
    for out, src, mask in zip(outs, (astro, group), masks):
        out, src = out.astype(np.int16), src.astype(np.int16)
        assert np.abs(out - src)[mask == 0].max() <= 1, "unmasked pixels unchanged"
        inverted = np.abs(out - (255 - src))[mask == 1]
        assert inverted.mean() < 6, "fully masked pixels are inverted (up to resampling)"
        assert (np.abs(out - src)[mask > 0] > 1).mean() > 0.9, "the masked pixels changed"
    shown = history["outputs"]["6"]["images"]
    assert len(shown) == 5, "Mask Margin Crop shows its crops"


def test_examples_are_offered_by_the_template_browser(comfy):
    """ComfyUI serves every example (and its thumbnail) where the template browser looks for them."""
    import urllib.request

    listed = comfy.get("/workflow_templates")
    assert sorted(listed["MaskMargin"]) == [p.stem for p in WORKFLOWS]
    served = comfy.get("/api/workflow_templates/MaskMargin/anonymize_faces.json")
    assert served == json.loads((WORKFLOWS[0].parent / "anonymize_faces.json").read_text())
    with urllib.request.urlopen(comfy.url + "/api/workflow_templates/MaskMargin/anonymize_faces.jpg") as r:
        assert r.headers["Content-Type"] == "image/jpeg" and len(r.read()) > 10_000
