"""Random-weight checkpoints that ComfyUI's own loader detects as SD1.5 (and SDXL), built offline.

    python tests/random_checkpoints.py sd15|sdxl OUT.safetensors   # with ComfyUI importable (COMFYUI_DIR)

No checkpoint can be downloaded here, yet the detailer examples need one to run through a real sampler.
These files are made from ComfyUI's own model classes (so CheckpointLoaderSimple loads them as it loads a
real SD1.5 file) with every weight initialised here, from a fixed seed: ComfyUI's layers skip PyTorch's
initialisation, so a weight left alone would hold whatever memory held (garbage, NaN). Every parameter is
first filled with NaN and checked finite after initialisation, so none can be missed.

The SD1.5 UNet is shallow (three levels, attention at 4x downsampling only, one block per level) but keeps
what ComfyUI's detection reads: model_channels 320, context_dim 768, conv proj_in, no adm, no temporal
layers. The CLIP text model and the VAE have SD1.5's real shapes. The SDXL one keeps SDXL's real transformer
depths on narrow (320-channel) levels, with SDXL's real CLIP-L and CLIP-G. Weights are stored as float16.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

SEED = 1234

# model_channels 320 at all three levels (channel_mult [1, 1, 1], ~48M parameters); attention (one
# transformer block) only at the third level (4x downsampling) and in the middle block.
SD15_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "adm_in_channels": None,
    "in_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 1, 1],
    "transformer_depth": [0, 0, 1],
    "channel_mult": [1, 1, 1],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": False,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "transformer_depth_output": [0, 0, 0, 0, 1, 1],
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


# SDXL's real depths (transformer_depth [0, 0, 2, 2, 10, 10], 10 in the middle, linear proj_in, context 2048,
# adm 2816: what SDXL detection reads) on narrow levels: 320 channels at all three (channel_mult [1, 1, 1]).
SDXL_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "channel_mult": [1, 1, 1],
    "transformer_depth_middle": 10,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
VAE_CONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def _comfy_on_path() -> None:
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if comfy_dir and comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():  # ComfyUI picks its device when model_management is imported
        comfy.cli_args.args.cpu = True


def initialise(module, seed: int) -> int:
    """Set every parameter of `module` from a seeded generator; returns the number of values set.

    Linear and conv weights: normal with std 1/sqrt(fan_in) (variance-preserving); norm weights 1, biases 0;
    embeddings std 0.02. The last conv of a UNet or VAE output gets a smaller scale so that a few sampler
    steps stay in range.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for param in module.parameters():
            param.fill_(float("nan"))
        for name, param in sorted(module.named_parameters()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias":
                values = torch.zeros(param.shape)
            elif param.ndim == 1:  # norm scales
                values = torch.ones(param.shape)
            elif "embedding" in name:
                values = torch.randn(param.shape, generator=generator) * 0.02
            else:
                fan_in = math.prod(param.shape[1:])
                values = torch.randn(param.shape, generator=generator) / math.sqrt(max(fan_in, 1))
                if name.startswith("out.") or "conv_out" in name:
                    values *= 0.2
            param.copy_(values.to(param.dtype))
            count += param.numel()
        bad = [name for name, p in module.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise RuntimeError(f"parameters left uninitialised: {bad[:5]}")
    return count


def _save(path: Path, model, clip, vae, seed: int) -> None:
    import comfy.utils
    import torch

    sd = model.state_dict_for_saving(clip.state_dict(), vae.state_dict())
    sd = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    comfy.utils.save_torch_file(sd, str(tmp), metadata={"maskmargin": "random weights for tests", "seed": str(seed)})
    tmp.replace(path)


def build(kind: str, path: Path, seed: int = SEED) -> dict[str, int]:
    """Write a random checkpoint ("sd15" or "sdxl") to `path`; returns parameter counts per part."""
    _comfy_on_path()
    import comfy.ldm.models.autoencoder
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.supported_models
    import torch

    if kind == "sd15":
        model = comfy.supported_models.SD15(dict(SD15_UNET, dtype=torch.float32)).get_model({})
        clip = comfy.sd1_clip.SD1ClipModel(device="cpu", dtype=torch.float32)
    else:
        model = comfy.supported_models.SDXL(dict(SDXL_UNET, dtype=torch.float32)).get_model({})
        clip = comfy.sdxl_clip.SDXLClipModel(device="cpu", dtype=torch.float32)
    vae = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=VAE_CONFIG, embed_dim=4)
    counts = {
        "unet": initialise(model.diffusion_model, seed),
        "clip": initialise(clip, seed + 1),
        "vae": initialise(vae, seed + 2),
    }
    _save(path, model, clip, vae, seed)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["sd15", "sdxl"])
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    counts = build(args.kind, args.out)
    print(" ".join(f"{k}={v / 1e6:.1f}M" for k, v in counts.items()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
