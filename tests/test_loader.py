"""Finding model files and loading detectors: the messages say which file goes in which folder."""

from pathlib import Path

import pytest

from maskmargin.errors import InvalidParameter, ModelNotAvailable
from maskmargin.loader import ModelDirs, find_file, load_detector, resolve
from maskmargin.registry import find_model


def dirs_in(root: Path) -> ModelDirs:
    return ModelDirs((root / "bbox",), (root / "segm",), (root / "mediapipe",))


def test_find_file_takes_the_first_folder_that_has_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "x.pt").write_bytes(b"x")
    assert find_file("x.pt", (tmp_path / "none", b, a)) == b / "x.pt"
    assert find_file("y.pt", (a, b)) is None


def test_yolo_file_and_user_options(tmp_path):
    dirs = dirs_in(tmp_path)
    spec = find_model("hand_yolov8n")
    assert dirs.yolo_file(spec) is None
    (tmp_path / "bbox").mkdir()
    (tmp_path / "bbox" / "hand_yolov8n.pt").write_bytes(b"x")
    assert dirs.yolo_file(spec) == tmp_path / "bbox" / "hand_yolov8n.pt"
    assert dirs.user_option("segm/people.pt") == ("people.pt", (tmp_path / "segm",))
    assert dirs.user_option("bbox/faces.pt") == ("faces.pt", (tmp_path / "bbox",))
    assert dirs.user_option("mediapipe_face_full") is None and dirs.user_option("other/x.pt") is None


def test_a_missing_yolo_file_names_the_file_the_folder_and_the_download(tmp_path):
    with pytest.raises(ModelNotAvailable) as err:
        resolve("face_yolov8n", dirs_in(tmp_path))
    message = err.value.message
    assert "face_yolov8n.pt" in message and str(tmp_path / "bbox") in message
    assert "huggingface.co/Bingsu/adetailer" in message and "python -m maskmargin download face_yolov8n" in message


def test_unknown_models_list_the_valid_names(tmp_path):
    with pytest.raises(InvalidParameter) as err:
        resolve("face_yolov9", dirs_in(tmp_path))
    assert err.value.parameter == "model" and "mediapipe_face_full" in err.value.message
    with pytest.raises(ModelNotAvailable, match="model file not found: nothing.pt"):
        resolve("nothing.pt", dirs_in(tmp_path))


def test_detectors_are_loaded_once_and_reused():
    first = load_detector("mediapipe_face_short")
    assert load_detector("runware:35@7") is first  # the AIR id names the same detector
    assert first.name == "mediapipe_face_short"
