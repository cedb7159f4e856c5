"""Where MediaPipe's .tflite files come from: models/mediapipe, an installed mediapipe, or the download
(pip download of the 0.10.21 wheel, files extracted and checked against pinned SHA-256 values)."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import zipfile
from pathlib import Path

import pytest

from maskmargin import cli
from maskmargin.backends import mediapipe_files as files
from maskmargin.errors import ModelNotAvailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_pins(monkeypatch):
    """Two small stand-in files with their own pins, so no real wheel is needed."""
    contents = {"a.tflite": b"first model", "b.tflite": b"second model"}
    pins = {n: (f"mediapipe/modules/x/{n}", hashlib.sha256(c).hexdigest()) for n, c in contents.items()}
    monkeypatch.setattr(files, "FILES", pins)
    monkeypatch.setattr(files, "installed_mediapipe_dir", lambda: None)
    return contents


def make_wheel(folder: Path, contents: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"mediapipe-{files.MEDIAPIPE_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in contents.items():
            z.writestr(f"mediapipe/modules/x/{name}", data)
        z.writestr("mediapipe/python/_framework_bindings.so", b"not extracted")
    return wheel


def test_the_pip_command_is_the_documented_one():
    args = files.pip_download_args("/tmp/x")
    assert args[1:] == [
        "-m",
        "pip",
        "download",
        "mediapipe==0.10.21",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_28_x86_64",
        "-d",
        "/tmp/x",
    ]


def test_the_seven_files_are_pinned():
    assert len(files.FILES) == 7
    assert files.FILES["face_detection_full_range_sparse.tflite"][1].startswith("2c3728e6")
    assert all(len(sha) == 64 for _, sha in files.FILES.values())


def test_download_extracts_only_the_pinned_files_from_a_cached_wheel(tmp_path, fake_pins, monkeypatch):
    make_wheel(tmp_path / "wheels", fake_pins)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the cached wheel is reused"))
    said = []
    written = files.download(tmp_path / "models", said.append, wheel_dir=tmp_path / "wheels")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["a.tflite", "b.tflite"]
    assert [p.read_bytes() for p in written] == [b"first model", b"second model"]
    assert any("sha256 checked" in line for line in said)
    assert files.download(tmp_path / "models", said.append) and "are in" in said[-1], "nothing to do the 2nd time"


def test_a_file_that_does_not_match_its_pin_is_refused(tmp_path, fake_pins):
    make_wheel(tmp_path / "wheels", {"a.tflite": b"tampered", "b.tflite": b"second model"})
    with pytest.raises(ModelNotAvailable, match="expected"):
        files.download(tmp_path / "models", wheel_dir=tmp_path / "wheels")
    assert not (tmp_path / "models" / "a.tflite").exists()


def test_pip_failing_is_a_clear_error(tmp_path, fake_pins, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "No route\n"))
    with pytest.raises(ModelNotAvailable, match="Offline") as err:
        files.download(tmp_path / "models")
    assert str(tmp_path / "models") in err.value.message and "No route" in err.value.message


def test_the_folder_comes_first_then_an_installed_mediapipe(tmp_path, fake_pins, monkeypatch):
    site = tmp_path / "site"
    (site / "mediapipe" / "modules" / "x").mkdir(parents=True)
    (site / "mediapipe" / "modules" / "x" / "a.tflite").write_bytes(fake_pins["a.tflite"])
    monkeypatch.setattr(files, "installed_mediapipe_dir", lambda: site / "mediapipe")
    folder = tmp_path / "models"
    assert files.find_file("a.tflite", (folder,)) == site / "mediapipe" / "modules" / "x" / "a.tflite"
    assert files.find_file("b.tflite", (folder,)) is None
    folder.mkdir()
    (folder / "a.tflite").write_bytes(b"user's own copy")
    assert files.find_file("a.tflite", (folder,)) == folder / "a.tflite"
    (site / "mediapipe" / "modules" / "x" / "b.tflite").write_bytes(b"another version")
    assert files.find_file("b.tflite", (folder,)) is None, "an installed file must match the pin"


def test_models_command_says_per_model_whether_its_files_are_present(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(files, "installed_mediapipe_dir", lambda: None)
    (tmp_path / "mediapipe").mkdir()
    (tmp_path / "mediapipe" / "face_detection_short_range.tflite").write_bytes(b"x")
    assert cli.main(["models", "--models-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "present" in lines["mediapipe_face_short"]
    assert "missing face_detection_full_range_sparse.tflite" in lines["mediapipe_face_full"]
    assert "python -m maskmargin download mediapipe" in lines["eyes_mesh_mediapipe"]


def test_install_py_puts_the_files_in_comfyuis_models_folder(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("pack_install", ROOT / "install.py")
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    monkeypatch.delenv("MASKMARGIN_MODELS_DIR", raising=False)
    monkeypatch.setattr(install, "PACK", tmp_path / "ComfyUI" / "custom_nodes" / "ComfyUI-MaskMargin")
    assert install.models_folder([]) == tmp_path / "ComfyUI" / "models"
    assert install.models_folder(["/x/models"]) == Path("/x/models")
    seen = []
    monkeypatch.setattr(files, "download", lambda folder, progress, show_pip: seen.append(folder))
    assert install.main([str(tmp_path / "m")]) == 0 and seen == [tmp_path / "m" / "mediapipe"]
