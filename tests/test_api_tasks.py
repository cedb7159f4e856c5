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
