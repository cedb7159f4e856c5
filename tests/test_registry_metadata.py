"""pyproject.toml carries what the Comfy Registry checks before publishing.

Rules from the registry's pyproject.toml specification (docs.comfy.org/registry/specifications) and
comfy-cli's `comfy node validate` / `comfy node publish` parser: a node id (`project.name`) under 100
characters of letters, digits, `-`, `_` and `.`, starting with a letter, no two special characters in a
row, without "ComfyUI"; a semantic version X.Y.Z; `license` as `{file = ...}` or `{text = ...}`; a
`Repository` URL; `[tool.comfy]` with a `PublisherId`, a `DisplayName`, an `Icon` URL (square, at most
400x400, SVG/PNG/JPG/GIF), `requires-comfyui` as [operator]X.Y.Z parts, `includes` a list of folders;
OS classifiers from the registry's list.
"""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import tomllib
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VERSION_PART = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)$")


@pytest.fixture(scope="module")
def config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_node_id_follows_the_registry_rules(config):
    name = config["project"]["name"]
    assert 0 < len(name) < 100
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", name), "letters, digits, '-', '_', '.'; starts with a letter"
    assert not re.search(r"[._-]{2}", name), "no consecutive special characters"
    assert "comfyui" not in name.lower(), "the registry asks node ids not to include ComfyUI"


def test_version_is_semantic_and_matches_the_engine(config):
    version = config["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    init = (ROOT / "maskmargin" / "__init__.py").read_text(encoding="utf-8")
    assert f'__version__ = "{version}"' in init, "pyproject.toml and maskmargin.__version__ disagree"


def test_license_description_and_repository(config):
    project = config["project"]
    license_ = project["license"]
    assert isinstance(license_, dict) and set(license_) <= {"file", "text"} and license_
    if "file" in license_:
        assert (ROOT / license_["file"]).is_file()
    assert project["description"].strip()
    repository = project["urls"]["Repository"]
    parsed = urlparse(repository)
    assert parsed.scheme == "https" and parsed.netloc and parsed.path.strip("/").count("/") == 1
    os_classifiers = [c for c in project.get("classifiers", []) if c.startswith("Operating System :: ")]
    for classifier in os_classifiers:
        assert classifier.split(" :: ")[1] in {"Microsoft", "POSIX", "MacOS", "OS Independent"}


def test_tool_comfy_section(config):
    comfy = config["tool"]["comfy"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    assert isinstance(comfy.get("includes", []), list)
    for folder in comfy.get("includes", []):
        assert (ROOT / folder).is_dir()
    parts = [p.strip() for p in comfy["requires-comfyui"].split(",")]
    assert all(VERSION_PART.match(p) for p in parts), comfy["requires-comfyui"]
    assert ">=0.8.0" in parts, "V3 nodes and the docs folder need ComfyUI 0.8"


def test_icon_is_a_square_image_in_this_repository(config):
    """The Icon URL points at a raw file of the Repository; that file is here, square, at most 400 px."""
    icon = config["tool"]["comfy"]["Icon"]
    parsed = urlparse(icon)
    assert parsed.scheme == "https"
    owner_repo = urlparse(config["project"]["urls"]["Repository"]).path.strip("/")
    prefix = f"/{owner_repo}/"
    assert parsed.netloc == "raw.githubusercontent.com" and parsed.path.startswith(prefix), icon
    _branch, _, relative = parsed.path[len(prefix) :].partition("/")
    path = ROOT / relative
    assert path.suffix.lower() in {".svg", ".png", ".jpg", ".jpeg", ".gif"} and path.is_file(), path
    if path.suffix.lower() != ".svg":
        with Image.open(path) as image:
            assert image.width == image.height <= 400, image.size


def test_comfy_cli_validate_passes(tmp_path):
    """`comfy node validate` (comfy-cli) on a copy of the working tree; set COMFY_CLI to its `comfy`."""
    import os
    import shutil
    import subprocess

    cli = os.environ.get("COMFY_CLI", "").strip()
    if not cli:
        pytest.skip("COMFY_CLI not set (path of comfy-cli's `comfy`, with ruff in its environment)")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, tmp_path / name)
    done = subprocess.run(
        [cli, "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "All validation checks passed" in output, output
    assert "Warning" not in output, output
