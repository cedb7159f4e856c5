"""One prompt per region: which text conditions which crop (the node batches the encoded prompts).

ComfyUI repeats a conditioning to the latent batch only when its batch is smaller, so a conditioning whose
batch equals the number of crops conditions each crop on its own prompt, in one sampler call.

The text, one line per region in crop order (Mask Margin Crop's order, see region_order.py):

- a line is the prompt of the next region; an empty line gives that region the default;
- `-` alone leaves that region untouched (Inpaint Stitch keeps the original pixels there);
- `label: text` gives every region with that detection label (e.g. `face`, `hand`, `person`; matched
  case-insensitively, a label matches when it starts with the name) that prompt where no line of its
  own does; `label: -` leaves them untouched;
- lines starting with `#` are comments.

Regions without a line of their own or a label rule get the default (`-` as the default leaves them all
untouched).

A video's tracked crops (tracking.py) read their track's line instead: line 1 prompts track 0 in every
frame, so one person keeps one prompt however the frame's regions are ordered.
"""

from __future__ import annotations

from dataclasses import dataclass

SKIP = "-"


@dataclass(frozen=True)
class RegionPrompt:
    """The prompt of one crop; None for a region left untouched."""

    index: int
    label: str
    text: str | None
    source: str  # "line N", "label <name>" or "default"


def _label_rule(line: str, labels: set[str]) -> tuple[str, str] | None:
    name, sep, text = line.partition(":")
    name = name.strip().lower()
    if sep and name and any(label.startswith(name) for label in labels):
        return name, text.strip()
    return None


def assign_prompts(
    text: str, labels: list[str], default: str = "", lines: list[int | None] | None = None
) -> list[RegionPrompt]:
    """The prompt of each of len(labels) regions (their detection labels in crop order); `lines[i]`, when
    given, is the line (from 0) region i reads, None for none of its own (default: its crop index)."""
    lines = lines if lines is not None else list(range(len(labels)))
    lowered = {label.lower() for label in labels if label}
    positional: list[str] = []
    rules: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        rule = _label_rule(line, lowered)
        if rule is not None:
            rules.append(rule)
        else:
            positional.append(line)
    while positional and not positional[-1]:  # trailing empty lines say nothing
        positional.pop()
    default = default.strip()
    out = []
    for i, (label, own) in enumerate(zip(labels, lines)):
        if own is not None and own < len(positional) and positional[own]:
            chosen, source = positional[own], f"line {own + 1}"
        else:
            match = next(((n, t) for n, t in rules if label.lower().startswith(n)), None)
            chosen, source = (match[1], f"label {match[0]}") if match else (default, "default")
        out.append(RegionPrompt(i, label, None if chosen == SKIP else chosen, source))
    return out


def describe(prompts: list[RegionPrompt]) -> str:
    """One line per region, for the node's text output: `0 (face, line 1): a smiling face`."""
    lines = []
    for p in prompts:
        what = "(untouched)" if p.text is None else p.text or "(empty prompt)"
        lines.append(f"{p.index} ({', '.join(x for x in (p.label, p.source) if x)}): {what}")
    return "\n".join(lines)
