"""The example workflows' layout: no node hides another (or its input and output dots)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"
WORKFLOWS = sorted(EXAMPLES.glob("*.json"))
TITLE_HEIGHT = 30  # LiteGraph draws the title bar above a node's pos
DOT_MARGIN = 10  # the slot dots sit on the node's left and right edges: keep a little room beside them


def rect(node: dict) -> tuple[float, float, float, float]:
    (x, y), (w, h) = node["pos"], node["size"]
    return x - DOT_MARGIN, y - TITLE_HEIGHT, x + w + DOT_MARGIN, y + h


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_no_two_nodes_overlap(path):
    nodes = json.loads(path.read_text())["nodes"]
    for a, b in itertools.combinations(nodes, 2):
        ra, rb = rect(a), rect(b)
        overlap = ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]
        assert not overlap, f"{path.name}: {a.get('title', a['type'])} overlaps {b.get('title', b['type'])}"


def test_every_detailer_example_exists_with_a_thumbnail():
    names = {p.stem for p in WORKFLOWS}
    assert "face_detailer_region_prompts" in names
    for path in WORKFLOWS:
        assert path.with_suffix(".jpg").is_file(), f"{path.name} has no thumbnail"
