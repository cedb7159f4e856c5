"""Install paths: requirements.txt into a user's ComfyUI never touches its torch; the bad ultralytics
releases are excluded; pyproject.toml carries what the Comfy Registry needs.

The pip checks resolve with `pip install --dry-run --report` (nothing is installed) using the pip of
the ComfyUI environment in COMFYUI_PYTHON; they are skipped without it, or when no package index is
reachable.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
BAD_ULTRALYTICS = ("8.3.41", "8.3.42", "8.3.45", "8.3.46")  # shipped a crypto miner (supply-chain attack)
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Network is unreachable|ConnectTimeout|ProxyError|Max retries exceeded"
)


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("-") else raw.strip()
        if line:
            lines.append(line)
    return lines


def requirements() -> list[Requirement]:
    lines = requirement_lines(ROOT / "requirements.txt")
    assert not [line for line in lines if line.startswith("-")], (
        "requirements.txt: no pip options (-c, -r, --index-url)"
    )
    return [Requirement(line) for line in lines]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("source", ["requirements.txt", "pyproject.toml"])
def test_dependencies_never_name_torch_and_exclude_the_bad_ultralytics(source):
    reqs = (
        requirements()
        if source == "requirements.txt"
        else [Requirement(d) for d in pyproject()["project"]["dependencies"]]
    )
    names = {canonicalize_name(r.name) for r in reqs}
    assert not names & set(TORCH_FAMILY), f"{source} must leave torch/torchvision/torchaudio to ComfyUI"
    (ultralytics,) = [r for r in reqs if canonicalize_name(r.name) == "ultralytics"]
    for bad in BAD_ULTRALYTICS:
        assert not ultralytics.specifier.contains(bad, prereleases=True), f"{source} allows ultralytics {bad}"
    for old in ("8.0.0", "8.3.40", "8.3.46.post1", "8.3.47rc1"):
        assert not ultralytics.specifier.contains(old, prereleases=True), f"{source} allows ultralytics {old}"
    assert ultralytics.specifier.contains("8.3.47") and ultralytics.specifier.contains("8.4.190")


def test_requirements_and_pyproject_name_the_same_packages():
    from_requirements = {(canonicalize_name(r.name), str(r.marker)) for r in requirements()}
    from_pyproject = {
        (canonicalize_name(r.name), str(r.marker)) for r in map(Requirement, pyproject()["project"]["dependencies"])
    }
    assert from_requirements == from_pyproject


# --------------------------------------------------------------------------------------------------
# pip, dry run, in the ComfyUI environment


def comfyui_python() -> str:
    value = os.environ.get("COMFYUI_PYTHON", "").strip()
    if not value:
        pytest.skip("COMFYUI_PYTHON not set (the ComfyUI environment whose pip resolves the requirements)")
    return value


def installed_versions(python: str) -> dict[str, str | None]:
    script = (
        "import importlib.metadata as m, json\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{n: v(n) for n in {TORCH_FAMILY!r}}}))"
    )
    return json.loads(subprocess.run([python, "-c", script], check=True, capture_output=True, text=True).stdout)


def dry_run(python: str, report: Path, *extra: str, target: str | None = None) -> list[dict]:
    """What `pip install -r requirements.txt` would install; `target`: resolve for that interpreter."""
    command = [
        python,
        "-m",
        "pip",
        *(["--python", target] if target else []),
        "install",
        "--dry-run",
        "--quiet",
        "--report",
        str(report),
        *extra,
        "-r",
        str(ROOT / "requirements.txt"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        if NETWORK_ERRORS.search(done.stderr):
            pytest.skip(f"no package index reachable: {done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(f"pip failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(report.read_text(encoding="utf-8"))["install"]


def names_and_versions(install: list[dict]) -> dict[str, str]:
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in install}


@pytest.mark.slow
def test_requirements_into_the_comfyui_environment_keep_its_torch(tmp_path):
    """The README's command (`pip install -r requirements.txt` with ComfyUI's Python), dry run: as-is, and
    with --upgrade; neither installs nor upgrades torch, torchvision or torchaudio."""
    python = comfyui_python()
    before = installed_versions(python)
    assert before["torch"], "the ComfyUI environment has no torch"
    for extra in ((), ("--upgrade",)):
        planned = names_and_versions(dry_run(python, tmp_path / f"report{len(extra)}.json", *extra))
        assert not set(planned) & set(TORCH_FAMILY), f"pip install {' '.join(extra)} would replace: " + ", ".join(
            f"{n} {before.get(n)} -> {planned[n]}" for n in TORCH_FAMILY if n in planned
        )
        assert planned.get("ultralytics") not in BAD_ULTRALYTICS
    assert installed_versions(python) == before


@pytest.mark.slow
def test_requirements_into_a_comfyui_without_our_dependencies_keep_its_torch(tmp_path):
    """A ComfyUI environment that has torch but none of our dependencies yet (a first install): an empty
    venv holding only the ComfyUI environment's torch/torchvision/torchaudio records, resolved by
    ComfyUI's pip. Everything else gets installed; the torch family stays."""
    python = comfyui_python()
    before = installed_versions(python)
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [target, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name, version in before.items():
        if version:  # the installed-package record pip reads (no code needed for a dry run)
            info = Path(purelib) / f"{name}-{version}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
            (info / "INSTALLER").write_text("pip\n")
            (info / "RECORD").write_text("")
    assert installed_versions(target) == before
    planned = names_and_versions(dry_run(python, tmp_path / "report.json", target=target))
    assert {"ultralytics", "mediapipe", "httpx", "numpy", "pillow"} <= set(planned), sorted(planned)
    assert not set(planned) & set(TORCH_FAMILY), "a first install would replace: " + ", ".join(
        f"{n} {before.get(n)} -> {planned[n]}" for n in TORCH_FAMILY if n in planned
    )
    assert Version(planned["ultralytics"]) >= Version("8.3.47")
    assert installed_versions(target) == before and installed_versions(python) == before
