"""ComfyUI entry point of the MaskMargin node pack: registers the nodes (V3 schema) and the web folder.

Outside ComfyUI (pytest collects the repository root as a package) there is nothing to register; the
engine lives in `maskmargin/` and is imported directly.
"""

try:
    from comfy_api.latest import ComfyExtension, io
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("comfy"):
        raise
else:
    from .nodes import model_info, remote
    from .nodes.crop_stitch import NODES as CROP_STITCH_NODES
    from .nodes.image_mask import NODES as IMAGE_MASK_NODES
    from .nodes.region_prompts import NODES as REGION_PROMPT_NODES
    from .nodes.region_select import NODES as REGION_SELECT_NODES
    from .nodes.segs import NODES as SEGS_NODES
    from .nodes.track import NODES as TRACK_NODES

    remote.register_routes()  # POST /maskmargin/api_key: the remote key, kept server-side
    model_info.register_routes()  # GET /maskmargin/models: the model picker's groups and files

    WEB_DIRECTORY = "./js"

    class MaskMarginExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return [
                *IMAGE_MASK_NODES,
                *TRACK_NODES,
                *REGION_SELECT_NODES,
                *CROP_STITCH_NODES,
                *REGION_PROMPT_NODES,
                *SEGS_NODES,
            ]

    async def comfy_entrypoint() -> MaskMarginExtension:
        return MaskMarginExtension()
