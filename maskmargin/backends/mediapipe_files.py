"""Where MediaPipe's .tflite files come from, and the explicit download that fetches them.

In order: the models/mediapipe folder(s) (ComfyUI's models folder, or --models-dir for the CLI); an
installed mediapipe 0.10.21 (its mediapipe/modules/ files, read in place); nothing else. The download
runs the user's own pip to fetch the mediapipe 0.10.21 wheel (`pip download ... --no-deps`), extracts
only the needed files with zipfile and checks each against its pinned SHA-256. The files are never
committed and never guessed at: a missing file is an error that says how to get it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelNotAvailable

MEDIAPIPE_VERSION = "0.10.21"

# file name -> (path inside the mediapipe wheel, sha256)
FILES: dict[str, tuple[str, str]] = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    ),
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    "face_landmark_with_attention.tflite": (
        "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
        "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
    ),
    "palm_detection_full.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    "hand_landmark_full.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
    "selfie_segmentation.tflite": (
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    ),
}

DOWNLOAD_COMMAND = "python -m maskmargin download mediapipe"

Progress = Callable[[str], None]


def pip_download_args(dest: str | Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
        "--only-binary", ":all:", "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64",
        "-d", str(dest),
    ]  # fmt: skip


def installed_mediapipe_dir() -> Path | None:
    """The package folder of an installed mediapipe (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_file(name: str) -> Path | None:
    root = installed_mediapipe_dir()
    if root is None:
        return None
    path = root.parent / FILES[name][0]
    return path if path.is_file() and sha256_file(path) == FILES[name][1] else None


def find_file(name: str, folders: tuple[Path, ...]) -> Path | None:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return _installed_file(name)


def missing_message(names: list[str], folders: tuple[Path, ...], model: str | None = None) -> str:
    where = folders[0] if folders else Path("models/mediapipe")
    what = f"{model} needs" if model else "needed:"
    return (
        f"{what} MediaPipe's model file(s) {', '.join(names)}, not found in {where} nor in an installed "
        f"mediapipe {MEDIAPIPE_VERSION}. Get them with `{DOWNLOAD_COMMAND} --models-dir <models folder>` "
        f"(it runs pip download mediapipe=={MEDIAPIPE_VERSION} and extracts the checked files into "
        f"<models folder>/mediapipe), or run the pack's install.py once (ComfyUI-Manager does), "
        f"or copy the files into {where}."
    )


def require_file(name: str, folders: tuple[Path, ...], model: str | None = None) -> Path:
    found = find_file(name, folders)
    if found is None:
        raise ModelNotAvailable(missing_message([name], folders, model), parameter="model")
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract(wheel: Path, folder: Path, names: list[str] | None = None) -> list[Path]:
    """Copy the named files out of a mediapipe wheel into `folder`, each checked against its pin."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as z:
        for name in names or list(FILES):
            inner, expected = FILES[name]
            data = z.read(inner)
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ModelNotAvailable(f"{name} in {wheel.name} has SHA-256 {actual}, expected {expected}")
            part = folder / f".{name}.part"
            part.write_bytes(data)
            os.replace(part, folder / name)
            written.append(folder / name)
    return written


def download(
    folder: str | Path,
    progress: Progress | None = None,
    wheel_dir: str | Path | None = None,
    show_pip: bool = False,
) -> list[Path]:
    """Make sure every file of FILES is in `folder`: missing or wrong ones come out of the mediapipe wheel,
    fetched by pip (into `wheel_dir` when given, which then also serves as a cache). `show_pip`: let pip
    print its own progress bar instead of capturing its output."""
    folder = Path(folder)
    say = progress or (lambda _msg: None)
    missing = [n for n, (_, sha) in FILES.items() if not ((folder / n).is_file() and sha256_file(folder / n) == sha)]
    if not missing:
        say(f"all {len(FILES)} MediaPipe files are in {folder}")
        return [folder / n for n in FILES]
    with tempfile.TemporaryDirectory(prefix="maskmargin-mediapipe-") as tmp:
        where = Path(wheel_dir) if wheel_dir else Path(tmp)
        wheels = sorted(where.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
        if not wheels:
            say(f"downloading the mediapipe {MEDIAPIPE_VERSION} wheel with pip (about 36 MB) ...")
            run = subprocess.run(pip_download_args(where), capture_output=not show_pip, text=True)
            wheels = sorted(where.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
            if run.returncode != 0 or not wheels:
                tail = (run.stderr or run.stdout or "see pip's output above").strip().splitlines()[-3:]
                raise ModelNotAvailable(
                    f"pip could not download mediapipe=={MEDIAPIPE_VERSION} ({' | '.join(tail)}). "
                    f"Offline? Copy {', '.join(missing)} into {folder} from a machine that has them."
                )
        for path in extract(wheels[0], folder, missing):
            say(f"  {path.name} ok (sha256 checked)")
    return [folder / n for n in FILES]


def files_for(backend: str, option: str | None = None) -> list[str]:
    """The .tflite files a registry backend needs."""
    if backend == "mediapipe_face":
        return ["face_detection_short_range.tflite" if option == "short" else "face_detection_full_range_sparse.tflite"]
    if backend == "mediapipe_mesh":
        return ["face_detection_full_range_sparse.tflite", "face_landmark_with_attention.tflite"]
    if backend == "mediapipe_hands":
        return ["palm_detection_full.tflite", "hand_landmark_full.tflite"]
    if backend == "mediapipe_selfie":
        return ["selfie_segmentation.tflite"]
    return []


def status(backend: str, option: str | None, folders: tuple[Path, ...]) -> str:
    """'present' (and where), or what is missing and how to get it, for `python -m maskmargin models`."""
    names = files_for(backend, option)
    found = {n: find_file(n, folders) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        where = folders[0] if folders else Path("models/mediapipe")
        return f"missing {', '.join(missing)} in {where}: run `{DOWNLOAD_COMMAND}`"
    places = sorted({str(p.parent) for p in found.values() if p is not None})
    return f"present ({', '.join(places)})"
