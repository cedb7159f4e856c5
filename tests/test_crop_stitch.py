"""Mask Margin Crop and Inpaint Stitch: geometry, exact blending, batches, borders and overlaps."""

import numpy as np
import pytest
import torch
from photos import ASTRONAUT_IMAGE

from maskmargin.crop import crop_window, mask_margin_crop
from maskmargin.detection import Detection, ImageDetections
from maskmargin.errors import InvalidParameter
from maskmargin.masks import build_mask
from maskmargin.settings import CropSettings
from maskmargin.stitch import inpaint_stitch


def faded_boxes(w: int, h: int, boxes, padding=0, blur=6) -> torch.Tensor:
    found = ImageDetections(w, h, tuple(Detection(tuple(map(float, b)), 0.9, "face") for b in boxes))
    return build_mask(found, padding, blur)


def photo(h=512, w=512) -> torch.Tensor:
    """A real photo at any size (the astronaut tiled), as one [h, w, 3] image."""
    reps = (-(-h // 512), -(-w // 512), 1)
    return ASTRONAUT_IMAGE.repeat(*reps)[:h, :w].contiguous()


def test_identity_round_trip_exact_outside_and_close_inside():
    mask = faded_boxes(512, 512, [(170, 60, 290, 190), (20, 300, 90, 380)])
    image = photo().unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(512, 512, 32))
    assert c.crops.shape == (2, 512, 512, 3) and c.crop_masks.shape == (2, 512, 512)
    out = inpaint_stitch(c, c.crops)
    outside = mask == 0
    assert torch.equal(out[0][outside], image[0][outside]), "mask 0: bit-identical"
    err = (out[0] - image[0]).abs()[~outside]
    assert err.mean() < 0.01 and err.max() < 0.25, "inside: resampling error only"


def test_constant_colour_crops_fill_the_mask_and_blend_monotone():
    grey = torch.full((1, 300, 400, 3), 0.2)
    mask = faded_boxes(400, 300, [(150, 100, 250, 180)], blur=8)
    c = mask_margin_crop(grey, mask, CropSettings(512, 512, 24))
    out = inpaint_stitch(c, torch.full_like(c.crops, 0.9))[0]
    assert torch.equal(out[mask == 0], grey[0][mask == 0])
    assert torch.allclose(out[mask == 1], torch.full_like(out[mask == 1], 0.9), atol=1e-6)
    row = out[140, 130:152, 0]  # leaving the box to the left through the 8 px band
    assert row[0] == pytest.approx(0.2) and row[-1] == pytest.approx(0.9)
    assert torch.all(torch.diff(row) >= -1e-7), "the band falls monotonically"
    band = (mask > 0) & (mask < 1)
    expected = 0.2 + mask[band] * 0.7
    assert torch.allclose(out[band][:, 0], expected, atol=1e-6), "the blend follows the mask's own fade"


def test_windows_keep_the_working_aspect_and_contain_the_region_with_its_margin():
    for width, height in [(512, 512), (832, 1216), (1216, 832), (768, 512)]:
        for box in [(10, 20, 50, 200), (100, 100, 400, 130), (0, 0, 7, 7)]:
            x0, y0, x1, y1 = crop_window(box, 16, width, height)
            assert (x1 - x0) * height == (y1 - y0) * width, "same zoom on both axes"
            assert x0 <= box[0] - 16 and y0 <= box[1] - 16 and x1 >= box[2] + 16 and y1 >= box[3] + 16


def test_several_regions_per_image_each_get_a_crop_centred_on_them():
    mask = faded_boxes(640, 480, [(40, 40, 100, 120), (300, 200, 360, 260), (520, 380, 600, 460)], blur=0)
    image = photo(480, 640).unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(256, 256, 16))
    assert len(c.plan) == 3
    for crop, region_mask in zip(c.plan, c.crop_masks):
        x0, y0, x1, y1 = crop.window
        rx0, ry0, rx1, ry1 = crop.region.box
        assert abs((x0 + x1) - (rx0 + rx1)) <= 1 and abs((y0 + y1) - (ry0 + ry1)) <= 1
        centre = region_mask[128, 128]
        assert centre == 1.0, "the region sits in the middle of its crop"
    # the crop mask shows only its own region, not a neighbour's part of the mask
    assert c.crop_masks[0][c.crop_masks[0] > 0].numel() < 256 * 256


def test_batch_of_three_with_zero_one_and_four_regions():
    images = torch.stack([photo(256, 320)] * 3)
    masks = torch.stack(
        [
            torch.zeros(256, 320),
            faded_boxes(320, 256, [(100, 80, 160, 150)]),
            faded_boxes(
                320, 256, [(10, 10, 40, 40), (200, 20, 240, 60), (20, 180, 60, 240), (250, 190, 300, 240)], blur=3
            ),
        ]
    )
    c = mask_margin_crop(images, masks, CropSettings(128, 128, 8))
    assert [p.image for p in c.plan] == [1, 2, 2, 2, 2] and c.crops.shape[0] == 5
    out = inpaint_stitch(c, torch.zeros_like(c.crops))
    assert torch.equal(out[0], images[0]), "an image without a region passes through untouched"
    for b in (1, 2):
        assert torch.equal(out[b][masks[b] == 0], images[b][masks[b] == 0])
        assert torch.all(out[b][masks[b] == 1] == 0)


def test_regions_touching_every_border_pad_instead_of_shifting():
    h, w = 200, 300
    boxes = [
        (0, 0, 40, 30),
        (260, 0, 300, 40),
        (0, 170, 50, 200),
        (250, 160, 300, 200),
        (130, 0, 170, 20),
        (0, 80, 20, 120),
    ]
    mask = faded_boxes(w, h, boxes, blur=0)
    image = photo(h, w).unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(128, 128, 16))
    assert len(c.plan) == len(boxes)
    for crop in c.plan:
        x0, y0, x1, y1 = crop.window
        assert x0 < 0 or y0 < 0 or x1 > w or y1 > h, "the window passes the border"
        rx0, ry0, rx1, ry1 = crop.region.box
        assert abs((x0 + x1) - (rx0 + rx1)) <= 1 and abs((y0 + y1) - (ry0 + ry1)) <= 1, "centred, not shifted"
    first = c.plan[0]  # the top-left corner region: its crop repeats the image's corner pixel past the border
    assert first.window[0] < 0 and first.window[1] < 0
    assert torch.allclose(c.crops[0, 0, 0], image[0, 0, 0], atol=1e-6)
    assert c.crop_masks[0, 0, 0] == 0, "nothing to inpaint past the border"
    out = inpaint_stitch(c, c.crops)
    assert torch.equal(out[0][mask == 0], image[0][mask == 0])
    assert (out[0] - image[0]).abs()[mask > 0].mean() < 0.02


def test_region_larger_than_the_working_size_is_scaled_down():
    mask = faded_boxes(1000, 800, [(100, 100, 900, 700)], blur=4)
    image = photo(800, 1000).unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(256, 256, 8))
    (zoom,) = c.zooms()
    assert zoom < 0.35 and c.crops.shape == (1, 256, 256, 3)
    out = inpaint_stitch(c, torch.full_like(c.crops, 0.5))
    assert torch.equal(out[0][mask == 0], image[0][mask == 0])
    assert torch.allclose(out[0][mask == 1], torch.tensor(0.5), atol=1e-6)


def test_tiny_region_is_zoomed_at_least_eight_times():
    image = torch.full((1, 300, 300, 3), 0.1)
    image[0, 150:160, 150:160] = torch.tensor([0.8, 0.4, 0.2])
    mask = faded_boxes(300, 300, [(150, 150, 160, 160)], blur=0)
    c = mask_margin_crop(image, mask, CropSettings(512, 512, 4, min_region_size=2))
    (zoom,) = c.zooms()
    assert zoom >= 8
    assert torch.allclose(c.crops[0, 256, 256], torch.tensor([0.8, 0.4, 0.2]), atol=1e-5), "the patch fills the centre"
    assert c.crop_masks[0, 256, 256] == 1 and c.crop_masks[0, 5, 5] == 0
    out = inpaint_stitch(c, c.crops)
    assert torch.equal(out[0][mask == 0], image[0][mask == 0])
    assert torch.allclose(out[0, 151:159, 151:159], image[0, 151:159, 151:159], atol=0.03), (
        "inside the patch: bicubic ringing of the hard edge, averaged back"
    )
    assert (out - image).abs().max() < 0.2, "its edge pixels: the resampling blur of a hard edge"


def test_small_regions_below_the_minimum_are_ignored():
    mask = faded_boxes(200, 200, [(10, 10, 14, 14), (100, 100, 140, 140)], blur=0)
    c = mask_margin_crop(photo(200, 200).unsqueeze(0), mask, CropSettings(128, 128, 8, min_region_size=8))
    assert len(c.plan) == 1 and c.plan[0].region.box == (100, 100, 140, 140)


def test_overlapping_crops_stitch_independently_of_order():
    # two regions close together: their windows overlap, each pixel still goes to its own region's crop
    mask = faded_boxes(300, 200, [(100, 80, 140, 120), (150, 80, 190, 120)], blur=3)
    image = photo(200, 300).unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(128, 128, 32))
    a, b = c.plan
    ax0, _, ax1, _ = a.window
    bx0, _, bx1, _ = b.window
    assert ax0 < bx1 and bx0 < ax1, "the windows overlap"
    colours = torch.stack([torch.full((128, 128, 3), 1.0), torch.full((128, 128, 3), 0.0)])
    out = inpaint_stitch(c, colours)[0]
    swapped = type(c)(c.crops.flip(0), c.crop_masks.flip(0), c.source, c.masks, c.plan[::-1], c.width, c.height)
    assert torch.equal(inpaint_stitch(swapped, colours.flip(0))[0], out), "paste order does not matter"
    assert torch.all(out[100, 100:140] == 1.0) and torch.all(out[100, 150:190] == 0.0)


def test_merge_overlapping_makes_one_crop():
    mask = faded_boxes(300, 200, [(100, 80, 140, 120), (150, 80, 190, 120)], blur=3)
    c = mask_margin_crop(photo(200, 300).unsqueeze(0), mask, CropSettings(128, 128, 32, merge_overlapping=True))
    assert len(c.plan) == 1 and c.plan[0].region.box[0] <= 97 and c.plan[0].region.box[2] >= 193
    out = inpaint_stitch(c, torch.zeros_like(c.crops))
    assert torch.all(out[0][mask == 1] == 0)


def test_detections_split_masks_that_run_together():
    boxes = [(60, 60, 120, 120), (124, 60, 184, 120)]  # masks padded by 8 touch and join
    found = ImageDetections(
        256, 200, tuple(Detection(tuple(map(float, b)), s, "face") for b, s in zip(boxes, (0.9, 0.8)))
    )
    mask = build_mask(found, 8, 4)
    image = photo(200, 256).unsqueeze(0)
    by_parts = mask_margin_crop(image, mask, CropSettings(128, 128, 16))
    assert len(by_parts.plan) == 1, "one connected part without detections"
    c = mask_margin_crop(image, mask, CropSettings(128, 128, 16), detections=[found])
    assert len(c.plan) == 2 and [p.region.label for p in c.plan] == ["face", "face"]
    a, b = (p.region for p in c.plan)
    full = []
    for r in (a, b):
        m = np.zeros((200, 256), bool)
        m[r.box[1] : r.box[3], r.box[0] : r.box[2]] = r.owned
        full.append(m)
    assert not (full[0] & full[1]).any(), "each pixel has one owner"
    assert np.array_equal(full[0] | full[1], (mask > 0).numpy()), "every masked pixel has an owner"
    assert full[0][90, 121] and full[1][90, 123], "split at the gap between the boxes"


def test_no_region_in_the_whole_batch_gives_a_placeholder_and_a_pass_through():
    images = torch.stack([photo(128, 160)] * 2)
    c = mask_margin_crop(images, torch.zeros(1, 128, 160), CropSettings(64, 64, 8))
    assert c.placeholder and c.crops.shape == (1, 64, 64, 3) and torch.all(c.crop_masks == 0)
    out = inpaint_stitch(c, torch.rand(1, 64, 64, 3))
    assert torch.equal(out, images) and out.data_ptr() != images.data_ptr()


def test_inputs_are_never_modified_and_channels_become_rgb():
    rgba = torch.cat([photo(128, 128), torch.full((128, 128, 1), 0.5)], dim=-1).unsqueeze(0)
    gray = photo(128, 128).mean(-1, keepdim=True).unsqueeze(0)
    mask = faded_boxes(128, 128, [(40, 40, 80, 80)]).unsqueeze(0)
    for image in (rgba, gray):
        before, mask_before = image.clone(), mask.clone()
        c = mask_margin_crop(image, mask, CropSettings(64, 64, 8))
        inpainted = c.crops.clone()
        out = inpaint_stitch(c, inpainted)
        assert torch.equal(image, before) and torch.equal(mask, mask_before) and torch.equal(inpainted, c.crops)
        assert c.crops.shape[-1] == 3 and out.shape == (1, 128, 128, 3)
        assert torch.equal(
            out[0][mask[0] == 0],
            image[0][mask[0] == 0][:, :1].expand(-1, 3) if image.shape[-1] == 1 else image[0][mask[0] == 0][:, :3],
        )


def test_sampler_output_of_another_size_is_scaled_back():
    mask = faded_boxes(256, 256, [(100, 100, 150, 150)])
    c = mask_margin_crop(photo(256, 256).unsqueeze(0), mask, CropSettings(512, 512, 16))
    out = inpaint_stitch(c, torch.full((1, 384, 384, 3), 0.25))
    assert torch.allclose(out[0][mask == 1], torch.tensor(0.25), atol=1e-6)


def test_bad_inputs_are_clear_errors():
    image = photo(128, 128).unsqueeze(0)
    mask = torch.zeros(1, 128, 128)
    with pytest.raises(InvalidParameter, match="multiple of 8") as e:
        CropSettings(500, 512)
    assert e.value.parameter == "width"
    with pytest.raises(InvalidParameter, match="mask_margin"):
        CropSettings(512, 512, -1)
    with pytest.raises(InvalidParameter, match="mask is 64x64 but the image is 128x128"):
        mask_margin_crop(image, torch.zeros(1, 64, 64), CropSettings())
    with pytest.raises(InvalidParameter, match="2 masks for 1 images"):
        mask_margin_crop(image, torch.zeros(2, 128, 128), CropSettings())
    with pytest.raises(InvalidParameter, match="2 detection sets for 1 images"):
        mask_margin_crop(image, mask, CropSettings(), detections=[ImageDetections(128, 128, ())] * 2)
    with pytest.raises(InvalidParameter, match="empty"):
        mask_margin_crop(torch.zeros(0, 128, 128, 3), mask, CropSettings())
    c = mask_margin_crop(image, faded_boxes(128, 128, [(10, 10, 50, 50), (80, 80, 120, 120)]), CropSettings(64, 64))
    with pytest.raises(InvalidParameter, match="got 1 images for 2 crops"):
        inpaint_stitch(c, c.crops[:1])


@pytest.mark.parametrize("size", [(1400, 1100), (90, 70), (512, 512)])
def test_gpu_kernels_agree_with_the_cpu_kernels(size):
    """The torch path (used on CUDA) and the OpenCV path (CPU) give the same picture."""
    from maskmargin.resample import resize

    crop = photo(400, 300)
    a, b = resize(crop, *size, kernel="opencv"), resize(crop, *size, kernel="torch")
    assert a.shape == b.shape == (*size, 3)
    assert (a - b).abs().mean() < 0.01 and float(b.min()) >= float(crop.min()) - 1e-6
    m = resize(crop[..., 0], *size, kernel="torch")
    assert m.shape == size and torch.allclose(m, b[..., 0], atol=1e-6)


def test_detection_region_spans_its_box_even_where_the_mask_is_smaller():
    """Only the mask's bounding rectangle is labelled; a detection box reaching past it still counts whole."""
    from maskmargin.regions import find_regions

    found = ImageDetections(640, 480, (Detection((100.0, 120.0, 220.0, 260.0), 0.9, "face"),))
    mask = build_mask(found, -20, 0)  # the mask sits 20 px inside the box
    (region,) = find_regions(mask, found)
    assert region.box == (100, 120, 220, 260)
    owned = np.zeros((480, 640), bool)
    owned[120:260, 100:220] = region.owned
    assert np.array_equal(owned, (mask > 0).numpy())
    assert find_regions(torch.zeros(480, 640), found) == []


@pytest.mark.parametrize("image_dtype", [torch.float16, torch.float64])
@pytest.mark.parametrize("crops_dtype", [torch.float16, torch.float32, torch.float64])
def test_float16_and_float64_images_stitch_to_float32(image_dtype, crops_dtype):
    mask = faded_boxes(512, 512, [(170, 60, 290, 190)])
    image = photo().unsqueeze(0).to(image_dtype)
    before = image.clone()
    c = mask_margin_crop(image, mask, CropSettings(256, 256, 16))
    grey = torch.full(c.crops.shape, 0.5, dtype=crops_dtype)
    out = inpaint_stitch(c, grey)
    assert out.dtype == torch.float32 and out.shape == (1, 512, 512, 3)
    assert torch.equal(image, before), "the input is not modified"
    outside, inside = mask == 0, mask == 1
    assert torch.equal(out[0][outside], image[0].float()[outside]), "mask 0: the input's values, exactly"
    assert torch.equal(out[0][inside], torch.full_like(out[0][inside], 0.5)), "mask 1: the inpainted value"


@pytest.mark.parametrize("strip", [256 << 10, 11000])
def test_cpu_and_torch_blend_kernels_agree_and_are_exact_at_both_ends(monkeypatch, strip):
    """Inpaint Stitch's numpy/OpenCV blend (CPU tensors) and its torch lerp (other devices) give the same
    picture; each keeps unmasked pixels bit for bit and puts the inpainted pixel where the mask is 1.
    With small strips the CPU blend goes through each box in many strips of rows, the last one shorter."""
    from maskmargin import stitch
    from maskmargin.buffers import copy_of

    monkeypatch.setattr(stitch, "STRIP_BYTES", strip)
    from maskmargin.stitch import blend_kernel, blend_numpy, blend_torch

    mask = faded_boxes(512, 512, [(170, 60, 290, 190), (200, 170, 320, 300), (20, 300, 90, 380)], padding=4, blur=12)
    image = photo().unsqueeze(0)
    found = ImageDetections(
        512,
        512,
        tuple(Detection(b, 0.9, "face") for b in [(170, 60, 290, 190), (200, 170, 320, 300), (20, 300, 90, 380)]),
    )
    c = mask_margin_crop(image, mask, CropSettings(256, 256, 16), detections=[found])
    assert blend_kernel(image, c.masks) is blend_numpy
    painted = torch.rand_like(c.crops)
    outs = []
    for kernel in (blend_numpy, blend_torch):
        out = copy_of(image)
        for i, crop in enumerate(c.plan):
            x0, y0, x1, y1 = crop.window
            from maskmargin.resample import resize

            kernel(out, c, i, resize(painted[i], y1 - y0, x1 - x0))
        outs.append(out)
    a, b = outs
    assert torch.equal(a[0][mask == 0], image[0][mask == 0]) and torch.equal(b[0][mask == 0], image[0][mask == 0])
    assert torch.equal(a[0][mask == 1], b[0][mask == 1]), "the inpainted pixel itself where the mask is 1"
    assert (a - b).abs().max() < 1e-6


def test_border_windows_are_the_same_on_both_kernels():
    from maskmargin.crop import _window_pixels_numpy, _window_pixels_torch

    image = photo(300, 400)
    for window in [(-50, -20, 150, 180), (300, 250, 480, 330), (-10, 10, 410, 290), (0, 0, 400, 300)]:
        a, b = _window_pixels_numpy(image, window), _window_pixels_torch(image, window)
        assert torch.equal(a, b) and a.shape == (window[3] - window[1], window[2] - window[0], 3)
        m = image[..., 0].contiguous()
        assert torch.equal(_window_pixels_numpy(m, window), _window_pixels_torch(m, window))


def test_a_parallel_copy_of_a_large_batch_is_exact(monkeypatch):
    from maskmargin import buffers
    from maskmargin.buffers import copy_of

    monkeypatch.setattr(buffers, "PARALLEL_COPY", 8 << 20)  # as if 36 MB were a video batch's size
    monkeypatch.setattr(buffers, "SLAB", 1 << 20)
    big = torch.rand(2, 1200, 1900, 4)  # copied in slabs on the workers
    view = big[..., :3]
    assert view.numel() * 4 > buffers.PARALLEL_COPY
    out = copy_of(view)
    assert torch.equal(out, view) and out.is_contiguous() and out.data_ptr() != big.data_ptr()
    flat = big[0, ..., 0]
    assert torch.equal(copy_of(flat), flat)


def test_a_sampler_output_of_nan_changes_no_unmasked_pixel():
    from maskmargin.buffers import copy_of
    from maskmargin.resample import resize
    from maskmargin.stitch import blend_numpy, blend_torch

    mask = faded_boxes(256, 256, [(60, 60, 140, 150)], blur=6)
    image = photo(256, 256).unsqueeze(0)
    c = mask_margin_crop(image, mask, CropSettings(128, 128, 16))
    bad = torch.full_like(c.crops, float("nan"))
    out = inpaint_stitch(c, bad)
    assert torch.equal(out[0][mask == 0], image[0][mask == 0]) and torch.isnan(out[0][mask > 0]).all()
    x0, y0, x1, y1 = c.plan[0].window
    back = resize(bad[0], y1 - y0, x1 - x0, kernel="opencv")
    for kernel in (blend_numpy, blend_torch):
        out = copy_of(image)
        kernel(out, c, 0, back)
        assert torch.equal(out[0][mask == 0], image[0][mask == 0])


def _shape_detection(x0: int, y0: int, size: int) -> Detection:
    """A detection with its own shape: a disc in a size x size box at (x0, y0)."""
    yy, xx = np.mgrid[:size, :size]
    disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 2.2) ** 2
    return Detection((x0, y0, x0 + size, y0 + size), 0.8, "person", disc, (x0, y0, x0 + size, y0 + size))


@pytest.mark.parametrize("padding,blur", [(0, 0), (8, 12), (-6, 4), (20, 0)])
def test_masks_built_from_detections_are_read_only_where_they_can_be_set(monkeypatch, padding, blur):
    """build_masks remembers where each image's mask can be above 0; Mask Margin Crop then labels only
    there and finds exactly the regions a whole-frame read finds (a copy of the masks is read whole)."""
    from maskmargin import regions
    from maskmargin.masks import build_masks, known_support

    w, h = 640, 480
    found = [
        ImageDetections(w, h, (Detection((100.0, 80.0, 220.0, 200.0), 0.9, "face"), _shape_detection(300, 250, 150))),
        ImageDetections(w, h, (Detection((-30.0, 400.0, 90.0, 520.0), 0.9, "face"),)),  # past two borders
        ImageDetections(w, h, ()),
    ]
    masks = build_masks(found, padding, blur)
    support = known_support(masks)
    assert support is not None and len(support) == 3 and support[2] == ()
    for b, windows in enumerate(support):  # nothing of the mask lies outside its image's windows
        outside = torch.ones(h, w, dtype=torch.bool)
        for x0, y0, x1, y1 in windows:
            outside[y0:y1, x0:x1] = False
        assert masks[b].gt(0).any() and not masks[b][outside].any() if windows else not masks[b].any()
    assert known_support(masks.clone()) is None and known_support(masks[:1]) is None

    reads = []
    real = regions.find_parts
    monkeypatch.setattr(regions, "find_parts", lambda on, near=None: reads.append(near) or real(on, near))
    images = photo(h, w).unsqueeze(0).expand(3, h, w, 3)
    settings = CropSettings(256, 256, 16)
    narrow = mask_margin_crop(images, masks, settings, detections=found)
    assert len(reads) == 3 and all(r is not None for r in reads), "only the support was read"
    reads.clear()
    whole = mask_margin_crop(images, masks.clone(), settings, detections=found)
    assert reads == [None, None, None], "a mask of unknown origin is read whole"
    assert len(narrow.plan) == len(whole.plan) == 3
    for a, b in zip(narrow.plan, whole.plan):
        assert (a.image, a.window, a.region.box, a.region.detection) == (
            b.image,
            b.window,
            b.region.box,
            b.region.detection,
        )
        assert np.array_equal(a.region.owned, b.region.owned)
    assert torch.equal(narrow.crops, whole.crops) and torch.equal(narrow.crop_masks, whole.crop_masks)


def test_a_mask_changed_after_it_was_built_is_read_whole():
    """A torch operation on the built masks (here a blob painted far from every detection) bumps the
    tensor's version: the remembered support no longer counts, and the blob becomes a region of its own."""
    from maskmargin.masks import build_masks, known_support

    found = [ImageDetections(400, 300, (Detection((50.0, 50.0, 120.0, 130.0), 0.9, "face"),))]
    masks = build_masks(found, 4, 4)
    assert known_support(masks) is not None
    masks[0, 200:240, 300:350] = 1.0
    assert known_support(masks) is None
    c = mask_margin_crop(photo(300, 400).unsqueeze(0), masks, CropSettings(128, 128, 8), detections=found)
    assert [(p.region.label, p.region.box) for p in c.plan] == [
        ("face", c.plan[0].region.box),
        ("mask", (300, 200, 350, 240)),
    ]


def test_one_built_mask_shared_by_a_batch_and_a_dead_masks_entry_goes():
    import gc

    from maskmargin import masks as masks_module
    from maskmargin.masks import build_masks

    found = [ImageDetections(300, 200, (Detection((40.0, 40.0, 100.0, 110.0), 0.9, "face"),))]
    mask = build_masks(found, 2, 6)
    images = torch.stack([photo(200, 300), photo(200, 300).flip(1)])
    c = mask_margin_crop(images, mask, CropSettings(128, 128, 8))
    assert [p.image for p in c.plan] == [0, 1] and c.plan[0].region.box == c.plan[1].region.box
    key = id(mask)
    assert key in masks_module._SUPPORT
    del mask, c
    gc.collect()
    assert key not in masks_module._SUPPORT
