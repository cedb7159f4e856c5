"""Turn a workflow in ComfyUI's UI format into the API format that POST /prompt runs.

The frontend does this in the browser; tests do it with the server's own node definitions
(object_info), so a widget that moved or a node that vanished fails here as it would for a user.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
OUTPUT_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_values(spec: list) -> int:
    """Widgets the frontend adds after an input: seed's control_after_generate, an upload button."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    extra = 0
    if options.get("control_after_generate"):
        extra += 1
    if options.get("image_upload") or options.get("video_upload") or options.get("audio_upload"):
        extra += 1
    return extra


def to_api(workflow: dict, object_info: dict) -> dict[str, dict[str, Any]]:
    """The API-format prompt of a UI-format workflow; raises KeyError naming any node type the server lacks."""
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in OUTPUT_ONLY or node.get("mode", 0) in (2, 4):  # notes; muted or bypassed nodes
            continue
        if kind not in object_info:
            raise KeyError(f"missing node type {kind!r} (node {node['id']})")
        info = object_info[kind]
        order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        linked = {inp["name"]: links[inp["link"]] for inp in node.get("inputs", []) if inp.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        for name in [*order.get("required", []), *order.get("optional", [])]:
            spec = specs[name]
            if _is_widget(spec):
                value = values.pop(0) if values else None
                for _ in range(_extra_values(spec)):
                    if values:
                        values.pop(0)
                if name not in linked and value is not None:
                    inputs[name] = value
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return prompt
