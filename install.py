"""Run once by ComfyUI-Manager after it installs requirements.txt: fetch MediaPipe's model files.

The ten MediaPipe-based models (and the two extras) run MediaPipe's own .tflite files in PyTorch. They come
out of the mediapipe 0.10.21 wheel, fetched with this Python's pip (`pip download --no-deps`, nothing is
installed) and checked against pinned SHA-256 values, into ComfyUI's models/mediapipe folder. Without
network access this prints what to do and exits 0: the pack still installs, and a MediaPipe model then
fails with the same instructions instead of guessing.

By hand: `python install.py [MODELS_FOLDER]`, or `python -m maskmargin download mediapipe --models-dir DIR`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent


def models_folder(argv: list[str]) -> Path:
    """The models folder: the argument, MASKMARGIN_MODELS_DIR, or ComfyUI's (the pack sits in custom_nodes/)."""
    if argv:
        return Path(argv[0]).expanduser()
    if os.environ.get("MASKMARGIN_MODELS_DIR"):
        return Path(os.environ["MASKMARGIN_MODELS_DIR"]).expanduser()
    if PACK.parent.name == "custom_nodes":
        return PACK.parent.parent / "models"
    return PACK / "models"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(PACK))
    from maskmargin.backends import mediapipe_files
    from maskmargin.errors import MaskMarginError

    folder = models_folder(argv) / "mediapipe"
    print(f"MaskMargin: MediaPipe model files into {folder}", flush=True)
    try:
        mediapipe_files.download(folder, lambda message: print(f"MaskMargin: {message}", flush=True), show_pip=True)
    except MaskMarginError as exc:
        print(f"MaskMargin: could not fetch the MediaPipe files: {exc.message}", flush=True)
        print(f"MaskMargin: later, run `{mediapipe_files.DOWNLOAD_COMMAND} --models-dir {folder.parent}`", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
