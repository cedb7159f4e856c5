"""The README and the node help pages name every model, with the folder its file goes in."""

from pathlib import Path

import pytest

from maskmargin.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
NODE_IDS = [
    "MaskMarginDetectorLoader",
    "MaskMarginImageMask",
    "MaskMarginCrop",
    "MaskMarginStitch",
    "MaskMarginSelectRegions",
    "MaskMarginRegionPrompts",
    "MaskMarginToSEGS",
    "MaskMarginFromSEGS",
    "MaskMarginTrackVideo",
]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_every_model_is_in_the_readme_table_and_the_loader_help(model):
    table = readme_section("Models")
    (row,) = [line for line in table.splitlines() if line.startswith(f"| {model.name} |")]
    if model.air:
        assert f"| {model.air} |" in row
    if model.file_name:
        assert f"models/ultralytics/{model.subfolder}/{model.file_name}" in row
    else:
        assert "`models/mediapipe/`" in row
    help_page = (ROOT / "js" / "docs" / "MaskMarginDetectorLoader.md").read_text(encoding="utf-8")
    assert f"`{model.name}`" in help_page


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_each_node_has_a_help_page_and_a_readme_entry(node_id):
    page = ROOT / "js" / "docs" / f"{node_id}.md"
    assert page.read_text(encoding="utf-8").startswith("# ")
    assert f"`{node_id}`" in readme_section("Nodes")


def test_example_workflows_are_what_the_generator_writes():
    """The JSON in example_workflows/ is the generator's output (edit the generator, not the files)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "tools" / "make_example_workflows.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
