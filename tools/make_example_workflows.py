"""Write the example workflows in example_workflows/ (ComfyUI's UI format), from one compact description each.

    python tools/make_example_workflows.py            # rewrite every .json
    python tools/make_example_workflows.py --check    # exit 1 when a file differs from what this writes

Keeping the graphs here means one place to change a node's widgets when the pack's inputs change.
Thumbnails (.jpg, same names) come from real runs: tools/render_workflow_thumbnails.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "example_workflows"

# Slot inputs and outputs of every node type the examples use: (name, type). Widgets are not listed:
# the frontend makes them from the node definitions and fills them from widgets_values.
IO: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "LoadVideo": ([], [("VIDEO", "VIDEO")]),
    "GetVideoComponents": ([("video", "VIDEO")], [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], []),
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "SetLatentNoiseMask": ([("samples", "LATENT"), ("mask", "MASK")], [("LATENT", "LATENT")]),
    "KSampler": (
        [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
        [("LATENT", "LATENT")],
    ),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "ImageScaleBy": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "MaskMarginDetectorLoader": ([], [("detector", "MASKMARGIN_DETECTOR")]),
    "MaskMarginImageMask": (
        [("image", "IMAGE"), ("detector", "MASKMARGIN_DETECTOR")],
        [
            ("mask", "MASK"),
            ("detections", "MASKMARGIN_DETECTIONS"),
            ("detections_json", "STRING"),
            ("preview", "IMAGE"),
        ],
    ),
    "MaskMarginCrop": (
        [("image", "IMAGE"), ("mask", "MASK"), ("detections", "MASKMARGIN_DETECTIONS")],
        [("crops", "IMAGE"), ("crop_masks", "MASK"), ("stitch", "MASKMARGIN_STITCH")],
    ),
    "MaskMarginStitch": ([("stitch", "MASKMARGIN_STITCH"), ("image", "IMAGE")], [("image", "IMAGE")]),
    "MaskMarginSelectRegions": (
        [("image", "IMAGE"), ("mask", "MASK"), ("detections", "MASKMARGIN_DETECTIONS")],
        [("mask", "MASK"), ("detections", "MASKMARGIN_DETECTIONS")],
    ),
    "MaskMarginTrackVideo": (
        [("mask", "MASK"), ("detections", "MASKMARGIN_DETECTIONS")],
        [("mask", "MASK"), ("detections", "MASKMARGIN_DETECTIONS"), ("detections_json", "STRING")],
    ),
    "MaskMarginRegionPrompts": (
        [("clip", "CLIP"), ("stitch", "MASKMARGIN_STITCH")],
        [("positive", "CONDITIONING"), ("stitch", "MASKMARGIN_STITCH"), ("prompts_used", "STRING")],
    ),
}
OPTIONAL = {("MaskMarginCrop", "detections"), ("MaskMarginSelectRegions", "detections"), ("CreateVideo", "audio")}
WIDGET_INPUTS = {("CreateVideo", "fps")}  # widgets fed by a link
SIZE = {
    "LoadImage": (320, 360),
    "LoadVideo": (320, 360),
    "CLIPTextEncode": (400, 160),
    "KSampler": (320, 270),
    "MaskMarginCrop": (340, 330),
    "MaskMarginImageMask": (320, 300),
    "SaveImage": (420, 460),
    "PreviewImage": (320, 340),
    "MaskMarginSelectRegions": (340, 330),
    "MaskMarginRegionPrompts": (400, 300),
}
TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its pos: layouts keep this much free above each node
# Columns of the detailer layout (x) and the gap between nodes stacked in one column.
COLUMNS = (0, 440, 880, 1320, 1760, 2200, 2640)
GAP = 60

SD15 = "v1-5-pruned-emaonly.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"
NEGATIVE = "blurry, lowres, deformed, disfigured, bad anatomy, watermark, text"


def detailer(
    *,
    title: str,
    model: str,
    mask: list,
    crop: list,
    checkpoint: str,
    prompt: str,
    sampler: list,
    video: bool = False,
    select: list | None = None,
    region_prompts: list | None = None,
    track: list | None = None,
) -> dict:
    """Image (or video) -> Image Mask -> [Track Video] [Select Regions] -> Mask Margin Crop -> one sampler call ->
    Inpaint Stitch -> save. With `region_prompts`, Region Prompts gives every crop its own prompt."""
    g = Graph(title)
    c = COLUMNS
    if video:
        load = g.node("LoadVideo", ["input.mp4", "image"], (c[0], 0))
        frames = g.node("GetVideoComponents", [], g.below(load))
        g.link(load, 0, frames, "video")
        source = (frames, 0)
        det = g.node("MaskMarginDetectorLoader", [model], g.below(frames))
    else:
        load = g.node("LoadImage", ["example.png", "image"], (c[0], 0))
        source = (load, 0)
        det = g.node("MaskMarginDetectorLoader", [model], g.below(load))
    im = g.node("MaskMarginImageMask", mask, (c[1], 0))
    g.link(*source, im, "image")
    g.link(det, 0, im, "detector")
    regions = (im, 0), (im, 1)
    col = 2
    if track is not None:
        tr = g.node("MaskMarginTrackVideo", track, (c[col], 0), title="Track Video (steady windows, one id per face)")
        g.link(*regions[0], tr, "mask")
        g.link(*regions[1], tr, "detections")
        regions = (tr, 0), (tr, 1)
        col += 1
    if select is not None:
        sel = g.node("MaskMarginSelectRegions", select, (c[col], 0), title="Select Regions (order and choose faces)")
        g.link(*source, sel, "image")
        g.link(*regions[0], sel, "mask")
        g.link(*regions[1], sel, "detections")
        regions = (sel, 0), (sel, 1)
        col += 1
    cr = g.node("MaskMarginCrop", crop, (c[col], 0))
    g.link(*source, cr, "image")
    g.link(*regions[0], cr, "mask")
    g.link(*regions[1], cr, "detections")
    ckpt = g.node("CheckpointLoaderSimple", [checkpoint], g.below(im))
    if region_prompts is not None:
        pos = g.node("MaskMarginRegionPrompts", region_prompts, g.below(cr), title="Prompt per region (crop order)")
        g.link(ckpt, 1, pos, "clip")
        g.link(cr, 2, pos, "stitch")
        stitch_from = (pos, 1)
    else:
        pos = g.node("CLIPTextEncode", [prompt], g.below(cr), title="Prompt for the regions")
        g.link(ckpt, 1, pos, "clip")
        stitch_from = (cr, 2)
    neg = g.node("CLIPTextEncode", [NEGATIVE], g.below(pos), title="Negative")
    g.link(ckpt, 1, neg, "clip")
    enc = g.node("VAEEncode", [], (c[col + 1], 0))
    g.link(cr, 0, enc, "pixels")
    g.link(ckpt, 2, enc, "vae")
    noise = g.node("SetLatentNoiseMask", [], g.below(enc))
    g.link(enc, 0, noise, "samples")
    g.link(cr, 1, noise, "mask")
    ks = g.node("KSampler", sampler, g.below(noise))
    g.link(ckpt, 0, ks, "model")
    g.link(pos, 0, ks, "positive")
    g.link(neg, 0, ks, "negative")
    g.link(noise, 0, ks, "latent_image")
    dec = g.node("VAEDecode", [], (c[col + 2], 0))
    g.link(ks, 0, dec, "samples")
    g.link(ckpt, 2, dec, "vae")
    st = g.node("MaskMarginStitch", [], g.below(dec))
    g.link(*stitch_from, st, "stitch")
    g.link(dec, 0, st, "image")
    crops = g.node("PreviewImage", [], g.below(st), title="Inpainted crops")
    g.link(dec, 0, crops, "images")
    if video:
        make = g.node("CreateVideo", [30.0], (c[col + 3], 0))
        g.link(st, 0, make, "images")
        g.link(frames, 2, make, "fps")
        g.link(frames, 1, make, "audio")
        save = g.node("SaveVideo", ["video/MaskMargin", "auto", "auto"], g.below(make))
        g.link(make, 0, save, "video")
    else:
        save = g.node("SaveImage", ["MaskMargin"], (c[col + 3], 0))
        g.link(st, 0, save, "images")
    return g.ui()


def anonymize() -> dict:
    """No checkpoint: every face pixelated (crop, scale down and up with nearest pixels, stitch)."""
    g = Graph("Anonymize faces")
    c = COLUMNS
    load = g.node("LoadImage", ["example.png", "image"], (c[0], 0))
    det = g.node("MaskMarginDetectorLoader", ["mediapipe_face_full"], g.below(load))
    im = g.node("MaskMarginImageMask", [0.25, 20, 12, 6, False], (c[1], 0))
    g.link(load, 0, im, "image")
    g.link(det, 0, im, "detector")
    cr = g.node("MaskMarginCrop", [8, "512x512 (SD1.5)", 768, 768, 8, False], (c[2], 0))
    g.link(load, 0, cr, "image")
    g.link(im, 0, cr, "mask")
    g.link(im, 1, cr, "detections")
    down = g.node("ImageScaleBy", ["area", 0.04], (c[3], 0), title="Pixel blocks (smaller = coarser)")
    g.link(cr, 0, down, "image")
    up = g.node("ImageScale", ["nearest-exact", 512, 512, "disabled"], g.below(down))
    g.link(down, 0, up, "image")
    st = g.node("MaskMarginStitch", [], (c[4], 0))
    g.link(cr, 2, st, "stitch")
    g.link(up, 0, st, "image")
    save = g.node("SaveImage", ["MaskMargin_anonymized"], (c[5], 0))
    g.link(st, 0, save, "images")
    return g.ui()


class Graph:
    def __init__(self, title: str):
        self.title = title
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def node(self, kind: str, widgets: list, pos: tuple[int, int], title: str | None = None) -> int:
        inputs, outputs = IO[kind]
        nid = len(self.nodes) + 1
        entry = {
            "id": nid,
            "type": kind,
            "pos": list(pos),
            "size": list(SIZE.get(kind, (320, 100))),
            "flags": {},
            "order": nid - 1,
            "mode": 0,
            "inputs": [
                {"name": n, "type": t, "link": None}
                | ({"shape": 7} if (kind, n) in OPTIONAL else {})
                | ({"widget": {"name": n}} if (kind, n) in WIDGET_INPUTS else {})
                for n, t in inputs
            ],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": kind},
            "widgets_values": widgets,
        }
        if title:
            entry["title"] = title
        self.nodes.append(entry)
        return nid

    def below(self, nid: int) -> tuple[int, int]:
        """The position under node `nid`, leaving GAP pixels between its bottom and the next title bar."""
        node = self.nodes[nid - 1]
        return node["pos"][0], node["pos"][1] + node["size"][1] + GAP

    def link(self, src: int, slot: int, dst: int, input_name: str) -> None:
        lid = len(self.links) + 1
        out = self.nodes[src - 1]["outputs"][slot]
        target = next(i for i, inp in enumerate(self.nodes[dst - 1]["inputs"]) if inp["name"] == input_name)
        self.nodes[dst - 1]["inputs"][target]["link"] = lid
        out["links"].append(lid)
        self.links.append([lid, src, slot, dst, target, out["type"]])

    def ui(self) -> dict:
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}, "info": {"name": self.title}},
            "version": 0.4,
        }


def workflows() -> dict[str, dict]:
    ksampler_sd15 = [42, "fixed", 24, 6.5, "dpmpp_2m", "karras", 0.45]
    face = "a detailed photo of a face, sharp focus, natural skin texture, detailed eyes"
    return {
        "face_detailer_sd15": detailer(
            title="Face detailer (SD1.5)",
            model="mediapipe_face_full",
            mask=[0.4, 10, 8, 12, False],
            crop=[32, "512x512 (SD1.5)", 768, 768, 16, False],
            checkpoint=SD15,
            prompt=face,
            sampler=ksampler_sd15,
        ),
        "face_detailer_sdxl": detailer(
            title="Face detailer (SDXL)",
            model="mediapipe_face_full",
            mask=[0.4, 10, 8, 16, False],
            crop=[48, "1024x1024 (SDXL, Flux)", 1024, 1024, 24, False],
            checkpoint=SDXL,
            prompt=face,
            sampler=[42, "fixed", 28, 6.0, "dpmpp_2m", "karras", 0.4],
        ),
        "hand_detailer": detailer(
            title="Hand detailer (SD1.5, hand_yolov8n.pt)",
            model="hand_yolov8n",
            mask=[0.35, 10, 12, 12, False],
            crop=[48, "512x512 (SD1.5)", 768, 768, 16, False],
            checkpoint=SD15,
            prompt="a detailed photo of a hand, five fingers, natural pose",
            sampler=ksampler_sd15[:6] + [0.5],
        ),
        "eyes_lips_detailer": detailer(
            title="Eyes and lips detailer (SD1.5)",
            model="eyes_lips_mesh",
            mask=[0.4, 10, 6, 8, False],
            crop=[24, "512x512 (SD1.5)", 768, 768, 8, False],
            checkpoint=SD15,
            prompt="detailed eyes, clear irises, natural lips, sharp focus",
            sampler=ksampler_sd15[:6] + [0.4],
        ),
        "person_detailer": detailer(
            title="Person detailer (SD1.5, person_yolov8n-seg.pt)",
            model="person_yolov8n-seg",
            mask=[0.4, 6, 8, 16, False],
            crop=[64, "512x768 (SD1.5 portrait)", 768, 768, 32, False],
            checkpoint=SD15,
            prompt="a detailed photo of a person, natural proportions",
            sampler=ksampler_sd15[:6] + [0.35],
        ),
        "video_face_detailer": detailer(
            title="Face detailer for video frames (SD1.5)",
            model="mediapipe_face_full",
            mask=[0.4, 10, 8, 12, False],
            crop=[32, "512x512 (SD1.5)", 768, 768, 16, False],
            checkpoint=SD15,
            prompt=face,
            sampler=ksampler_sd15[:6] + [0.35],
            video=True,
            track=[8, 2, 4.0],
        ),
        "face_detailer_region_prompts": detailer(
            title="A prompt per face, faces left to right (SD1.5)",
            model="mediapipe_face_full",
            mask=[0.4, 10, 8, 12, False],
            select=["left to right", "", "", 0.0, 0.0, "px"],
            crop=[32, "512x512 (SD1.5)", 768, 768, 16, False],
            checkpoint=SD15,
            prompt=face,
            region_prompts=[
                "a smiling face, detailed eyes\na serious face, detailed eyes\n-",
                "a detailed photo of a face, sharp focus",
            ],
            sampler=ksampler_sd15[:6] + [0.45],
        ),
        "anonymize_faces": anonymize(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for name, wf in workflows().items():
        path = OUT / f"{name}.json"
        text = json.dumps(wf, indent=2) + "\n"
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(path)
    if stale:
        print(f"out of date: {', '.join(stale)} (run python tools/make_example_workflows.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
