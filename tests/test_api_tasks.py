"""The API's tasks without a transport: parsing, defaults, error entries, result shapes."""

import base64
import io
import uuid

import numpy as np
import pytest
from photos import ASTRONAUT
from PIL import Image

from maskmargin.api_tasks import (
    OUTPUT_FORMATS,
    OUTPUT_TYPES,
    error_dict,
    error_entry,
    parse_masking_task,
    run_tasks,
)
from maskmargin.cli.local_context import LocalContext
from maskmargin.errors import InvalidParameter
from maskmargin.images import FORMATS
from maskmargin.settings import MaskSettings


def masking(**fields) -> dict:
    return {"taskType": "imageMasking", "taskUUID": str(uuid.uuid4()), "inputImage": "x.png", "model": "m"} | fields


def test_defaults_are_the_apis():
    parsed = parse_masking_task(masking())
    assert parsed.settings == MaskSettings() == MaskSettings(0.25, 6, 4, 4)
    assert (parsed.output_format, parsed.output_type, parsed.include_cost) == ("JPG", "URL", False)


def test_choices_are_case_insensitive_and_come_from_one_table():
    assert OUTPUT_FORMATS == tuple(FORMATS) == ("JPG", "PNG", "WEBP")
    assert OUTPUT_TYPES == ("base64Data", "dataURI", "URL")
    parsed = parse_masking_task(masking(outputFormat="png", outputType="DATAURI"))
    assert (parsed.output_format, parsed.output_type) == ("PNG", "dataURI")


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"colour": 1}, "colour"),
        ({"taskUUID": "not-a-uuid"}, "taskUUID"),
        ({"taskUUID": str(uuid.uuid1())}, "taskUUID"),
        ({"confidence": 1.5}, "confidence"),
        ({"maxDetections": 21}, "maxDetections"),
        ({"maskPadding": 2.5}, "maskPadding"),
        ({"maskBlur": -1}, "maskBlur"),
        ({"outputFormat": "GIF"}, "outputFormat"),
        ({"includeCost": "yes"}, "includeCost"),
        ({"uploadEndpoint": "ftp://x"}, "uploadEndpoint"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_fields_name_the_parameter(fields, parameter):
    with pytest.raises(InvalidParameter) as err:
        parse_masking_task(masking(**fields))
    assert err.value.parameter == parameter


def test_error_entries_have_the_apis_shape():
    task = masking()
    assert error_dict("serviceBusy", "busy") == {
        "code": "serviceBusy",
        "message": "busy",
        "parameter": None,
        "taskType": None,
        "taskUUID": None,
    }
    entry = error_entry(InvalidParameter("bad", parameter="confidence"), task)
    assert entry == error_dict("invalidParameter", "bad", "confidence", task)
    assert entry["taskUUID"] == task["taskUUID"]
    assert error_entry(KeyError("k"), task)["code"] == "internalError"


def test_a_request_runs_every_task_and_reports_each_failure(tmp_path):
    Image.fromarray(ASTRONAUT).save(tmp_path / "a.png")
    good = masking(inputImage="a.png", model="mediapipe_face_full", outputType="base64Data", outputFormat="PNG")
    bad = masking(inputImage="a.png", model="mediapipe_face_full", maxDetections=0)
    answer = run_tasks([good, bad, {"taskType": "imageCaption"}], LocalContext(tmp_path / "out", base_dir=tmp_path))
    (result,) = answer["data"]
    assert result["taskUUID"] == good["taskUUID"] and len(result["detections"]) == 1
    box = result["detections"][0]
    assert 150 < box["x_min"] < box["x_max"] < 310 and 40 < box["y_min"] < box["y_max"] < 220
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["maskImageBase64Data"]))))
    assert mask.shape == (512, 512) and mask[120, 225] == 255 and mask[450, 50] == 0
    assert [e["parameter"] for e in answer["errors"]] == ["maxDetections", "taskType"]
    with pytest.raises(InvalidParameter):
        run_tasks([], LocalContext(tmp_path))


def test_the_current_schemas_inputs_and_settings_form_means_the_flat_form():
    flat = masking(confidence=0.4, maxDetections=2, maskPadding=-3, maskBlur=7)
    nested = {k: v for k, v in flat.items() if k not in ("inputImage", "confidence", "maxDetections")}
    nested = {k: v for k, v in nested.items() if k not in ("maskPadding", "maskBlur")}
    nested |= {"inputs": {"image": "x.png"}, "settings": {"confidence": 0.4, "maxDetections": 2}}
    nested |= {"maskPadding": -3, "settings": nested["settings"] | {"maskBlur": 7}}
    assert parse_masking_task(nested) == parse_masking_task(flat)


@pytest.mark.parametrize(
    ("fields", "parameter", "message"),
    [
        (
            {"settings": {"confidence": 0.5}, "confidence": 0.5},
            "confidence",
            "confidence is given twice: flat and as settings.confidence; send one",
        ),
        (
            {"settings": {"blur": 3}},
            "settings.blur",
            "unknown field 'blur' in settings; allowed: confidence, maskBlur, maskPadding, maxDetections",
        ),
        ({"settings": [1]}, "settings", "settings must be an object, got [1]"),
        (
            {"settings": {"maxDetections": 0}},
            "settings.maxDetections",
            "settings.maxDetections must be an integer from 1 to 20, got 0",
        ),
        ({"outputQuality": 100}, "outputQuality", "outputQuality must be an integer from 20 to 99, got 100"),
        ({"outputQuality": 19}, "outputQuality", "outputQuality must be an integer from 20 to 99, got 19"),
        ({"deliveryMethod": "later"}, "deliveryMethod", "deliveryMethod must be one of sync, async, got 'later'"),
        ({"ttl": 59}, "ttl", "ttl must be an integer >= 60, got 59"),
        ({"webhookURL": "ftp://x"}, "webhookURL", "webhookURL must be an http(s) URL"),
        ({"confidence": "high"}, "confidence", "confidence must be a number from 0 to 1, got 'high'"),
        ({"maskPadding": 2000}, "maskPadding", "maskPadding must be an integer from -1024 to 1024, got 2000"),
    ],
)
def test_field_errors_come_from_the_table(fields, parameter, message):
    with pytest.raises(InvalidParameter) as err:
        parse_masking_task(masking(**fields))
    assert (err.value.parameter, err.value.message) == (parameter, message)


def test_new_fields_and_aliases():
    parsed = parse_masking_task(
        masking(outputFormat="JPEG", outputQuality=60, deliveryMethod="ASYNC", ttl=120, webhookURL="https://h/x")
    )
    assert (parsed.output_format, parsed.output_quality, parsed.delivery_method) == ("JPG", 60, "async")
    assert (parsed.ttl, parsed.webhook_url) == (120, "https://h/x")
    assert parse_masking_task(masking()).output_quality == 95


def test_one_table_holds_every_default():
    from maskmargin.task_fields import IMAGE_MASKING

    d = MaskSettings()
    assert (d.confidence, d.max_detections, d.mask_padding, d.mask_blur) == tuple(
        IMAGE_MASKING[n].default for n in ("confidence", "maxDetections", "maskPadding", "maskBlur")
    )
    with pytest.raises(InvalidParameter) as err:
        MaskSettings(max_detections=21)
    assert err.value.message == "maxDetections must be an integer from 1 to 20, got 21"


def test_a_local_run_refuses_a_webhook(tmp_path):
    answer = run_tasks([masking(webhookURL="https://example.com/hook")], LocalContext(tmp_path))
    (error,) = answer["errors"]
    assert error["parameter"] == "webhookURL" and "needs the service" in error["message"]
