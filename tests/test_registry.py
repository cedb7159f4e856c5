"""The model table: the 15 API models in AIR order, look-ups by name and AIR id, user files."""

from maskmargin.registry import MODELS, find_model, spec_for_file


def test_the_15_api_models_carry_air_ids_1_to_15_in_order():
    api = [m for m in MODELS if not m.extra]
    assert [m.air for m in api] == [f"runware:35@{i}" for i in range(1, 16)]
    assert api[0].name == "face_yolov8n" and api[14].name == "eyes_mesh_mediapipe"
    assert all(m.air is None for m in MODELS if m.extra)


def test_find_model_by_name_or_air_id_any_case():
    assert find_model("mediapipe_face_full") is find_model("RUNWARE:35@6") is find_model("  Mediapipe_Face_Full ")
    assert find_model("nose_mesh_mediapipe").air == "runware:35@13"
    assert find_model("runware:35@16") is None and find_model("face") is None


def test_yolo_models_name_their_file_and_folder():
    face, person = find_model("face_yolov8s"), find_model("person_yolov8n-seg")
    assert (face.file_name, face.subfolder, face.needs_file) == ("face_yolov8s.pt", "bbox", True)
    assert (person.file_name, person.subfolder, person.shape) == ("person_yolov8n-seg.pt", "segm", "segmentation")
    assert not find_model("mediapipe_face_mesh").needs_file


def test_user_files_are_boxes_or_segmentation_by_folder_or_name():
    assert spec_for_file("bbox/my_faces.pt").shape == "box"
    assert spec_for_file("segm/people.pt").shape == "segmentation"
    assert spec_for_file("anywhere/cats-seg.pt").subfolder == "segm"
    assert spec_for_file("bbox/face_yolov8n.pt") is find_model("face_yolov8n")  # a known file is the known model
