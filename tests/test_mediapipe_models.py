"""Every mediapipe-based model on NASA's astronaut portrait (public domain, shipped in scikit-image)."""

import io
import sys

import numpy as np
import pytest
import torch
from photos import ASTRONAUT, ASTRONAUT_IMAGE
from PIL import Image

from maskmargin.backends import mediapipe_files
from maskmargin.backends.mediapipe_mesh import keypoint_estimate
from maskmargin.detection import Detection, ImageDetections, shape_detection
from maskmargin.errors import InvalidParameter, ModelNotAvailable
from maskmargin.loader import ModelDirs, clear_cache, load_detector, resolve
from maskmargin.masks import build_mask
from maskmargin.pipeline import image_mask
from maskmargin.preview import encode_jpeg, thumbnails
from maskmargin.registry import MODELS, api_models, find_model
from maskmargin.settings import MaskSettings

FACE_REGION = (160, 55, 295, 190)  # generous bounds around her face
MESH = [m.name for m in MODELS if m.backend == "mediapipe_mesh"]


def mask_of(model: str, image=ASTRONAUT, padding=0, blur=0):
    det = load_detector(model)
    found = ImageDetections(image.shape[1], image.shape[0], tuple(det.detect(image, 0.25, 20)))
    return found, build_mask(found, padding, blur).numpy()


def centroid(mask):
    ys, xs = np.nonzero(mask > 0.5)
    return xs.mean(), ys.mean()


def inside(mask, region):
    x0, y0, x1, y1 = region
    ys, xs = np.nonzero(mask)
    return len(xs) > 0 and xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1


def test_there_are_15_api_models_and_every_name_and_air_id_resolves():
    assert len(api_models()) == 15
    assert [m.air for m in api_models()] == [f"runware:35@{i}" for i in range(1, 16)]
    for spec in api_models():
        assert find_model(spec.name) is spec
        assert find_model(spec.air) is spec and find_model(spec.air.upper()) is spec
        if not spec.needs_file:
            assert resolve(spec.air)[0] is spec and resolve(spec.name) == (spec, None)


def test_unknown_model_names_the_parameter_and_the_choices():
    with pytest.raises(InvalidParameter) as err:
        resolve("face_yolov9")
    assert err.value.parameter == "model" and "mediapipe_face_full" in err.value.message


@pytest.mark.parametrize("model", ["mediapipe_face_full", "mediapipe_face_short", "runware:35@6"])
def test_face_detectors_find_the_one_face(model):
    found, mask = mask_of(model)
    assert len(found.detections) == 1
    x0, y0, x1, y1 = found.detections[0].box
    assert 165 < x0 < 190 and 60 < y0 < 95 and 265 < x1 < 290 and 160 < y1 < 190
    assert found.detections[0].score > 0.8
    assert mask.sum() == pytest.approx((round(x1) - round(x0)) * (round(y1) - round(y0)), rel=0.03)


@pytest.mark.parametrize("model", MESH)
def test_mesh_models_mask_inside_the_face(model):
    found, mask = mask_of(model)
    assert len(found.detections) == 1, "one region per face"
    assert inside(mask, FACE_REGION)
    assert "(estimated)" not in found.detections[0].label, "the real mesh ran, not the keypoint fallback"


def test_features_sit_where_they_belong():
    eyes = centroid(mask_of("eyes_mesh_mediapipe")[1])
    nose = centroid(mask_of("nose_mesh_mediapipe")[1])
    lips = centroid(mask_of("lips_mesh_mediapipe")[1])
    face = centroid(mask_of("mediapipe_face_mesh")[1])
    assert eyes[1] < nose[1] < lips[1], "eyes above nose above lips"
    assert abs(nose[0] - eyes[0]) < 10 and abs(lips[0] - nose[0]) < 10, "on one vertical line"
    assert eyes[1] < face[1] < lips[1] + 20


def test_eyes_are_two_shapes_and_the_band_is_one():
    from scipy import ndimage

    _, eyes = mask_of("eyes_mesh_mediapipe")
    _, band = mask_of("mediapipe_face_mesh_eyes_only")
    labels, count = ndimage.label(eyes > 0.5)
    assert count == 2
    left, right = (centroid(labels == i) for i in (1, 2))
    assert abs(left[0] - right[0]) > 30 and abs(left[1] - right[1]) < 8
    assert ndimage.label(band > 0.5)[1] == 1
    assert np.all(band[eyes > 0.5] > 0.5), "the band covers both eyes"


def test_combined_models_are_unions_of_their_parts():
    _, eyes = mask_of("eyes_mesh_mediapipe")
    _, lips = mask_of("lips_mesh_mediapipe")
    _, nose = mask_of("nose_mesh_mediapipe")
    for combo, parts in (
        ("eyes_lips_mesh", (eyes, lips)),
        ("nose_eyes_mesh", (nose, eyes)),
        ("nose_lips_mesh", (nose, lips)),
    ):
        _, m = mask_of(combo)
        union = np.maximum(*parts)
        assert np.array_equal(m > 0.5, union > 0.5), combo


def group_photo():
    """Eight astronaut faces on one 600x300 canvas: a stand-in group photo."""
    from PIL import Image

    face = Image.fromarray(ASTRONAUT[20:240, 120:340]).resize((110, 110))
    canvas = Image.new("RGB", (600, 300), (90, 90, 100))
    for i in range(8):
        canvas.paste(face, (20 + (i % 4) * 150, 20 + (i // 4) * 150))
    return np.asarray(canvas)


@pytest.mark.parametrize("model", ["eyes_mesh_mediapipe", "mediapipe_face_mesh", "nose_lips_mesh"])
def test_mesh_models_keep_every_face_of_a_group(model):
    image = group_photo()
    faces, _ = mask_of("mediapipe_face_full", image)
    found, mask = mask_of(model, image)
    assert len(faces.detections) == 8
    assert len(found.detections) == len(faces.detections)
    for face in faces.detections:
        x0, y0, x1, y1 = face.pixel_box(image.shape[1], image.shape[0])
        assert mask[y0:y1, x0:x1].sum() > 0, "every face found by the detector has its region"


def test_polygon_fill_is_exact_at_pixel_centres():
    from maskmargin.detection import fill_polygons

    (x0, y0, x1, y1), square = fill_polygons([np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)])
    ys, xs = np.nonzero(square)
    assert (xs.min() + x0, xs.max() + x0, ys.min() + y0, ys.max() + y0) == (10, 19, 10, 19)
    assert square.sum() == 100
    # a concave "U": the notch stays empty
    u = np.array([[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]], float)
    (ux0, uy0, _, _), filled = fill_polygons([u])
    assert filled[20 - uy0, 15 - ux0] == 0 and filled[5 - uy0, 15 - ux0] == 1 and filled[20 - uy0, 5 - ux0] == 1
    assert filled.sum() == 900 - 200


def test_keypoint_fallback_geometry():
    face = Detection((100.0, 100.0, 200.0, 200.0), 0.9, "face")
    kps = np.array([[130, 135], [170, 135], [150, 160], [150, 180], [105, 145], [195, 145]], float)
    shapes = {
        opt: shape_detection(keypoint_estimate(opt, face, kps), 0.9, opt, 400, 400)
        for opt in ("eyes", "nose", "lips", "face")
    }
    cy = {opt: (d.box[1] + d.box[3]) / 2 for opt, d in shapes.items()}
    assert cy["eyes"] < cy["nose"] < cy["lips"]
    assert shapes["face"].box[0] >= 99 and shapes["face"].box[2] <= 201


def test_grayscale_and_rgba_batches_give_the_same_masks():
    rgb = ASTRONAUT_IMAGE
    gray = rgb.mean(dim=-1, keepdim=True)
    rgba = torch.cat([rgb, torch.full_like(gray, 0.5)], dim=-1)
    det = load_detector("mediapipe_face_full")
    settings = MaskSettings(0.25, 6, 4, 4)
    batch = torch.stack([rgb, rgb])
    before = batch.clone()
    a = image_mask(det, batch, settings, with_preview=True, thumbnail_side=128)
    assert torch.equal(batch, before), "input not modified"
    b = image_mask(det, rgba.unsqueeze(0), settings)
    g = image_mask(det, gray.unsqueeze(0), settings)
    assert a.masks.shape == (2, 512, 512) and a.preview.shape == (2, 512, 512, 3)
    assert torch.equal(a.masks[0], a.masks[1]) and torch.equal(a.masks[0], b.masks[0])
    assert len(g.detections[0].detections) == 1
    assert a.preview[0, 0, 0].tolist() == pytest.approx(rgb[0, 0].tolist()), "preview leaves unmasked pixels"
    assert b.preview is None and b.thumbnails is None, "previews only when asked for"
    # thumbnails: 128 px, the box outline drawn at a quarter of the box's position, tint where the mask is
    assert a.thumbnails.shape == (2, 128, 128, 3) and a.thumbnails.dtype == torch.uint8
    box = a.detections[0].detections[0].pixel_box(512, 512)
    x0, y0 = box[0] // 4, box[1] // 4
    assert a.thumbnails[0, y0 + 2, x0].tolist() == [26, 255, 76]  # the box colour (0.1, 1, 0.3) in 8 bits
    cy, cx = (box[1] + box[3]) // 8, (box[0] + box[2]) // 8
    block = a.preview[0, cy * 4 : cy * 4 + 4, cx * 4 : cx * 4 + 4].mean(dim=(0, 1))
    thumb = a.thumbnails.float() / 255
    assert thumb[0, cy, cx].tolist() == pytest.approx(block.tolist(), abs=0.01), "tinted like the preview"
    assert thumb[0, 0, 0].tolist() == pytest.approx(rgb[0:4, 0:4].mean(dim=(0, 1)).tolist(), abs=0.01)
    # a size the image's is not a multiple of: the mask is sampled through an index, the box scaled the same
    source = [np.ascontiguousarray(ASTRONAUT)]
    odd = thumbnails(source, a.masks[:1], a.detections[:1], 100)
    plain = thumbnails(source, torch.zeros(1, 512, 512), [ImageDetections(512, 512, ())], 100)
    s = 100 / 512
    assert odd.shape == (1, 100, 100, 3)
    assert odd[0, int(box[1] * s), int(box[0] * s) + 2].tolist() == [26, 255, 76]
    cy, cx = int((box[1] + box[3]) / 2 * s), int((box[0] + box[2]) / 2 * s)
    m = float(a.masks[0, int((cy + 0.5) / s), int((cx + 0.5) / s)])
    expected = plain[0, cy, cx].float().lerp(torch.tensor([255.0, 63.75, 25.5]), 0.45 * m).round()
    assert m == 1.0 and odd[0, cy, cx].tolist() == expected.tolist()
    # shown as JPEG files: RGB order kept, close to the drawn pixels
    files = encode_jpeg(a.thumbnails)
    assert len(files) == 2 and all(f.startswith(b"\xff\xd8\xff") for f in files)
    decoded = np.asarray(Image.open(io.BytesIO(files[0])))
    assert decoded.shape == (128, 128, 3)
    drawn = a.thumbnails[0].numpy().astype(np.int16)
    error, swapped = np.abs(decoded - drawn).mean(), np.abs(decoded[..., ::-1] - drawn).mean()
    assert error < 8 and swapped > 2 * error, (error, swapped)


def test_empty_batch_is_a_clear_error():
    det = load_detector("mediapipe_face_full")
    with pytest.raises(InvalidParameter, match="empty"):
        image_mask(det, torch.zeros(0, 64, 64, 3), MaskSettings())


def test_a_missing_model_file_names_the_folder_the_command_and_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setattr(mediapipe_files, "installed_mediapipe_dir", lambda: None)
    for model in ("mediapipe_face_short", "eyes_mesh_mediapipe", "extra_mediapipe_hands"):
        with pytest.raises(ModelNotAvailable) as err:
            load_detector(model, ModelDirs(mediapipe=(tmp_path / "mediapipe",)))
        message = err.value.message
        assert str(tmp_path / "mediapipe") in message and model in message
        assert "python -m maskmargin download mediapipe" in message and "install.py" in message


def test_mediapipe_is_never_imported(monkeypatch):
    clear_cache()
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` would raise ImportError
    try:
        assert len(load_detector("mediapipe_face_full").detect(ASTRONAUT, 0.25, 6)) == 1
    finally:
        clear_cache()


def test_image_mask_in_inference_mode_as_comfyui_runs_it():
    """ComfyUI executes nodes under torch.inference_mode (thread-local): the helper thread must follow."""
    det = load_detector("mediapipe_face_full")
    batch = (ASTRONAUT_IMAGE).unsqueeze(0).repeat(3, 1, 1, 1)
    with torch.inference_mode():
        result = image_mask(det, batch, MaskSettings(0.25, 6, 4, 4), thumbnail_side=128)
    plain = image_mask(det, batch, MaskSettings(0.25, 6, 4, 4))
    assert torch.equal(result.masks, plain.masks) and result.masks[0].max() == 1
    assert result.thumbnails.shape == (3, 128, 128, 3)
