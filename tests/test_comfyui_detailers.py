"""Every example workflow end to end in a real ComfyUI, detailers through a real sampler (random weights).

Load Checkpoint -> ... -> KSampler -> VAE Decode -> Inpaint Stitch -> Save Image with the example's own
graph; the test only shrinks the working size (256 px) and the steps (3), and saves four more things as
PNG: the images the crop got, the mask it got, Image Mask's own mask and the stitched result. Outside the
mask the result is bit-identical to the input, inside it changed, for every image of the batch (video frames
too: the video example's clip has a frame where the face is covered, detailed from the track's prediction).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from detailer_fixtures import checkpoints, sdxl_checkpoint, video_file  # noqa: F401  (fixtures)
from PIL import Image
from skimage import data
from synthetic_video import Motion, video
from workflow_api import to_api

pytestmark = pytest.mark.comfyui

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"
WORKFLOWS = sorted(EXAMPLES.glob("*.json"))
WORKING = 256
STEPS = 3
SDXL_SKIP = "MASKMARGIN_SKIP_SLOW is set: the SDXL example (a 2.4 GB random SDXL checkpoint) is not run"


# the video example's clip: the astronaut's face moving right and growing, hidden by a grey card in one frame
CLIP = Motion(start=(110.0, 150.0), speed=(9.0, 2.0), bend=0.0, scale=(0.6, 0.7), frames=5)
CLIP_COVERED = 2


@pytest.fixture(scope="module")
def inputs(comfy):
    """example.png (the astronaut) and input.mp4 (CLIP, with a covered frame): the examples' inputs."""
    astro = data.astronaut()
    Image.fromarray(astro).save(comfy.input_dir / "example.png")
    video_file(comfy.input_dir / "input.mp4", list(video([CLIP], covered=(CLIP_COVERED,), side=320)))
    return astro


def prepared(workflow: dict, info: dict) -> tuple[dict, dict[str, str]]:
    """The API graph with a small working size and few steps, plus SaveImage nodes for the crop's input
    images, the mask and the stitched result; returns (graph, {"in"|"mask"|"out": node id})."""
    graph = to_api(workflow, info)
    kinds = {spec["class_type"]: nid for nid, spec in graph.items()}
    for spec in graph.values():
        if spec["class_type"] == "MaskMarginCrop":
            spec["inputs"].update(working_size="custom", custom_width=WORKING, custom_height=WORKING)
        if spec["class_type"] == "KSampler":
            spec["inputs"]["steps"] = STEPS
    crop = graph[kinds["MaskMarginCrop"]]["inputs"]
    graph["9001"] = {"class_type": "SaveImage", "inputs": {"images": crop["image"], "filename_prefix": "t_in"}}
    graph["9002"] = {"class_type": "MaskToImage", "inputs": {"mask": crop["mask"]}}
    graph["9003"] = {"class_type": "SaveImage", "inputs": {"images": ["9002", 0], "filename_prefix": "t_mask"}}
    graph["9004"] = {
        "class_type": "SaveImage",
        "inputs": {"images": [kinds["MaskMarginStitch"], 0], "filename_prefix": "t_out"},
    }
    graph["9005"] = {"class_type": "MaskToImage", "inputs": {"mask": [kinds["MaskMarginImageMask"], 0]}}
    graph["9006"] = {"class_type": "SaveImage", "inputs": {"images": ["9005", 0], "filename_prefix": "t_found"}}
    return graph, {"in": "9001", "mask": "9003", "out": "9004", "found": "9006"}


def saved(comfy, history: dict, node_id: str) -> list[np.ndarray]:
    entries = history["outputs"][node_id]["images"]
    return [np.asarray(Image.open(comfy.output_dir / e.get("subfolder", "") / e["filename"])) for e in entries]


def check_changed_only_inside(comfy, history: dict, ids: dict[str, str], name: str) -> None:
    ins, masks, outs = (saved(comfy, history, ids[k]) for k in ("in", "mask", "out"))
    assert len(ins) == len(masks) == len(outs) >= 1
    for i, (src, mask, out) in enumerate(zip(ins, masks, outs)):
        mask = mask[..., 0] if mask.ndim == 3 else mask
        assert out.shape == src.shape, f"{name} image {i}"
        assert (mask > 0).any(), f"{name} image {i}: something was found"
        outside = mask == 0
        assert np.array_equal(out[outside], src[outside]), f"{name} image {i}: pixels outside the mask changed"
        diff = np.abs(out.astype(np.int16) - src.astype(np.int16))
        assert diff[mask == 255].mean() > 2, f"{name} image {i}: the masked region was not inpainted"


def is_sdxl(path: Path) -> bool:
    nodes = json.loads(path.read_text())["nodes"]
    return any(n["type"] == "CheckpointLoaderSimple" and "xl" in n["widgets_values"][0] for n in nodes)


EXAMPLE_PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if is_sdxl(p) else []) for p in WORKFLOWS]


@pytest.mark.parametrize("path", EXAMPLE_PARAMS)
def test_example_runs_end_to_end(comfy, checkpoints, inputs, path, request):  # noqa: F811
    if is_sdxl(path):
        if os.environ.get("MASKMARGIN_SKIP_SLOW"):
            pytest.skip(SDXL_SKIP)
        request.getfixturevalue("sdxl_checkpoint")
    graph, ids = prepared(json.loads(path.read_text()), comfy.object_info())
    history = comfy.run(graph, timeout=900)
    check_changed_only_inside(comfy, history, ids, path.stem)
    if any(n["type"] == "MaskMarginTrackVideo" for n in json.loads(path.read_text())["nodes"]):
        found = saved(comfy, history, ids["found"])
        assert len(found) == CLIP.frames and not found[CLIP_COVERED].any(), "the detector misses the covered face"
        # ... yet that frame was masked and inpainted (checked above): from the track's predicted box


def group_photo() -> np.ndarray:
    """512 x 512: four astronaut heads, two of them mirrored."""
    head = np.asarray(Image.fromarray(data.astronaut()[10:250, 110:330]).resize((256, 256)))
    row = np.concatenate([head, head[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([row[:, ::-1], row], axis=0))


def region_prompt_graph(prompts: str) -> dict:
    """Two faces of the group photo (the top row, left to right), each with its own prompt, one sampler call."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "group.png"}},
        "2": {"class_type": "MaskMarginDetectorLoader", "inputs": {"model": "mediapipe_face_full"}},
        "3": {
            "class_type": "MaskMarginImageMask",
            "inputs": {
                "image": ["1", 0],
                "detector": ["2", 0],
                "confidence": 0.25,
                "max_detections": 10,
                "mask_padding": 6,
                "mask_blur": 6,
            },
        },
        "4": {
            "class_type": "MaskMarginSelectRegions",
            "inputs": {
                "image": ["1", 0],
                "mask": ["3", 0],
                "detections": ["3", 1],
                "order": "top to bottom",
                "keep_index": "0,1",
                "keep_labels": "",
                "min_size": 0.0,
                "max_size": 0.0,
                "size_unit": "px",
            },
        },
        "5": {
            "class_type": "MaskMarginCrop",
            "inputs": {
                "image": ["1", 0],
                "mask": ["4", 0],
                "detections": ["4", 1],
                "mask_margin": 16,
                "working_size": "custom",
                "custom_width": WORKING,
                "custom_height": WORKING,
                "min_region_size": 8,
                "merge_overlapping": False,
            },
        },
        "6": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "7": {
            "class_type": "MaskMarginRegionPrompts",
            "inputs": {"clip": ["6", 1], "stitch": ["5", 2], "prompts": prompts, "default": "a face"},
        },
        "8": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["6", 1], "text": "blurry"}},
        "9": {"class_type": "VAEEncode", "inputs": {"pixels": ["5", 0], "vae": ["6", 2]}},
        "10": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["9", 0], "mask": ["5", 1]}},
        "11": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["6", 0],
                "positive": ["7", 0],
                "negative": ["8", 0],
                "latent_image": ["10", 0],
                "seed": 7,
                "steps": STEPS,
                "cfg": 6.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 0.6,
            },
        },
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["6", 2]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "t_region_crops"}},
        "14": {"class_type": "MaskMarginStitch", "inputs": {"stitch": ["7", 1], "image": ["12", 0]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "t_region_out"}},
    }


def test_region_prompts_condition_each_crop_on_its_own_prompt(comfy, checkpoints):  # noqa: F811
    group = group_photo()
    Image.fromarray(group).save(comfy.input_dir / "group.png")
    ab = saved(comfy, comfy.run(region_prompt_graph("a smiling woman\nan old man, wrinkles")), "13")
    ac = saved(comfy, comfy.run(region_prompt_graph("a smiling woman\na red robot, metal")), "13")
    assert len(ab) == len(ac) == 2, "two crops, one sampler call"
    assert np.array_equal(ab[0], ac[0]), "the first crop's prompt did not change: the same pixels"
    assert not np.array_equal(ab[1], ac[1]), "the second crop's prompt changed: other pixels"
    history = comfy.run(region_prompt_graph("a smiling woman\n-"))
    (out,) = saved(comfy, history, "15")
    top_right = out[:256, 256:]
    assert np.array_equal(top_right, group[:256, 256:]), "the region marked - is left untouched"
    assert not np.array_equal(out[:256, :256], group[:256, :256]), "the other one is inpainted"


def test_segs_round_trip_gives_the_same_crops(comfy, inputs):
    base = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "MaskMarginDetectorLoader", "inputs": {"model": "mediapipe_face_full"}},
        "3": {
            "class_type": "MaskMarginImageMask",
            "inputs": {
                "image": ["1", 0],
                "detector": ["2", 0],
                "confidence": 0.25,
                "max_detections": 4,
                "mask_padding": 6,
                "mask_blur": 6,
            },
        },
        "4": {
            "class_type": "MaskMarginToSEGS",
            "inputs": {"image": ["1", 0], "mask": ["3", 0], "detections": ["3", 1], "crop_factor": 2.0},
        },
        "5": {"class_type": "MaskMarginFromSEGS", "inputs": {"segs": ["4", 0]}},
    }
    crop = {
        "mask_margin": 16,
        "working_size": "custom",
        "custom_width": 128,
        "custom_height": 128,
        "min_region_size": 8,
        "merge_overlapping": False,
    }
    graph = dict(base)
    graph["6"] = {
        "class_type": "MaskMarginCrop",
        "inputs": {"image": ["1", 0], "mask": ["5", 0], "detections": ["5", 1], **crop},
    }
    graph["7"] = {
        "class_type": "MaskMarginCrop",
        "inputs": {"image": ["1", 0], "mask": ["3", 0], "detections": ["3", 1], **crop},
    }
    graph["8"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t_segs"}}
    graph["9"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "t_direct"}}
    history = comfy.run(graph)
    via_segs, direct = saved(comfy, history, "8"), saved(comfy, history, "9")
    assert len(via_segs) == len(direct) == 1
    assert np.array_equal(via_segs[0], direct[0])
