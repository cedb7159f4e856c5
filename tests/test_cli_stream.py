"""`python -m maskmargin run` streams: tasks are read one at a time, answers written as they finish."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from loopback import ScriptedAPI, masking_answer
from photos import astronaut_png
from PIL import Image

import maskmargin.cli.stream as stream
from maskmargin.api_tasks import iter_answers, run_tasks
from maskmargin.cli.local_context import LocalContext
from maskmargin.cli.remote_context import RemoteContext
from maskmargin.cli.stream import AnswerWriter, TasksFileError, iter_json_array
from maskmargin.remote.config import RemoteConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return astronaut_png(tmp_path_factory.mktemp("img"))


def task(photo: Path, **fields) -> dict:
    base = {
        "taskType": "imageMasking",
        "taskUUID": str(uuid.uuid4()),
        "inputImage": str(photo),
        "model": "mediapipe_face_full",
        "outputType": "base64Data",
    }
    return base | fields


TEXT = '[1234567, {"a": "bcdefghij", "b": [1, 2.5e3, null]}, 12, true, "x\\"y", -0.5, false, []]'


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 64, 1 << 20])
def test_elements_come_out_as_json_loads_reads_them_at_any_chunk_size(monkeypatch, chunk):
    monkeypatch.setattr(stream, "CHUNK", chunk)
    assert list(iter_json_array(io.StringIO(TEXT), "t.json")) == json.loads(TEXT)
    assert list(iter_json_array(io.StringIO(" \n[ ]\n"), "t.json")) == []


def test_a_large_element_is_read_whole(monkeypatch):
    monkeypatch.setattr(stream, "CHUNK", 1000)
    big = [{"inputImage": "QUJD" * 250_000}, 7]
    assert list(iter_json_array(io.StringIO(json.dumps(big)), "t.json")) == big


def test_elements_before_a_fault_come_out_then_the_fault_is_named():
    elements = iter_json_array(io.StringIO('[{"a": 1}, {"b": 2} {"c": 3}]'), "t.json")
    assert next(elements) == {"a": 1} and next(elements) == {"b": 2}
    with pytest.raises(TasksFileError) as err:
        next(elements)
    assert str(err.value) == "t.json is not a JSON array of tasks: expected ',' or ']' between tasks, found '{'"


def test_the_writer_writes_what_json_dumps_writes():
    answer = {
        "data": [{"taskUUID": "a", "detections": [{"x_min": 1}]}, {"taskUUID": "b", "detections": []}],
        "errors": [{"code": "invalidParameter", "message": "m", "parameter": "p", "taskType": None}],
    }
    for case in (answer, {"data": answer["data"]}, {"data": [], "errors": answer["errors"]}):
        out = io.StringIO()
        writer = AnswerWriter(out)
        for kind in ("data", "errors"):
            for entry in case.get(kind, []):
                writer.add(kind, entry)
        writer.close()
        assert out.getvalue() == json.dumps(case, indent=2) + "\n"


def pulled_when_answered(tasks: list, context) -> list[int]:
    """For each answer, how many tasks had been taken from the stream when it came out."""
    taken = []

    def source():
        for t in tasks:
            taken.append(t)
            yield t

    return [len(taken) for _ in iter_answers(source(), context)]


def test_a_local_run_takes_one_task_at_a_time_and_keeps_no_image(tmp_path, photo):
    context = LocalContext(tmp_path)
    tasks = [task(photo) for _ in range(6)] + [
        {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": str(photo)}
    ]
    assert pulled_when_answered(tasks, context) == [1, 2, 3, 4, 5, 6, 7]
    assert context.images == {}  # nothing kept for later tasks: none can name a UUID this run hands out
    answer = run_tasks([task(photo, inputImage=str(uuid.uuid4()))], context)
    assert "upload it first" in answer["errors"][0]["message"]


def test_a_remote_run_prefetches_one_window_at_a_time(tmp_path, photo):
    with ScriptedAPI([masking_answer()]) as api:
        config = RemoteConfig(api_url=api.url + "/v1", api_key="k", timeout=10, retries=0, concurrency=2)
        context = RemoteContext(tmp_path, config)
        held, taken = [], []
        fetch = context.fetch_image

        def counting(reference):
            held.append(len(context._fetched))
            return fetch(reference)

        def source():
            for i in range(10):
                taken.append(i)
                yield task(photo, inputImage="data:image/png;base64," + base64_png(i))

        context.fetch_image = counting  # type: ignore[method-assign]
        try:
            answered = [(kind, len(taken)) for kind, _ in iter_answers(context.prefetched(source()), context)]
        finally:
            context.close()
    assert [kind for kind, _ in answered] == ["data"] * 10
    # tasks are taken a window (2 x concurrency) at a time, sent together, answered in order
    assert [n for _, n in answered] == [4, 4, 4, 4, 8, 8, 8, 8, 10, 10]
    assert max(held) <= context.window == 4  # images held at once: one window's
    assert len(api.requests) == 10  # each task sent once (the prefetch), none again when it runs


def base64_png(seed: int) -> str:
    import base64

    pixels = np.full((60, 40, 3), seed * 20, np.uint8)  # masking_answer's box fits
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_killed_run_leaves_an_answer_for_every_mask_file_but_the_last(tmp_path, photo):
    tasks_file = tmp_path / "tasks.json"
    tasks = [task(photo, outputType="URL", outputFormat="PNG") for _ in range(200)]
    tasks_file.write_text(json.dumps(tasks))
    out_dir = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskmargin", "run", str(tasks_file), "--output-dir", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # answers arrive while the run goes on
            lines.append(line)
            if sum('"maskImageURL"' in entry for entry in lines) >= 3:
                break
    finally:
        proc.kill()
        proc.wait()
        rest = proc.stdout.read()
    assert proc.returncode != 0
    text = "".join(lines) + rest
    assert text.startswith('{\n  "data": [\n    {\n      "taskType": "imageMasking",')
    urls = [
        line.split('"maskImageURL": ')[1].strip().strip('",') for line in text.splitlines() if "maskImageURL" in line
    ]
    files = {p.as_uri() for p in out_dir.iterdir()}
    assert 3 <= len(urls) < 200
    assert set(urls) <= files and len(files - set(urls)) <= 1  # at most the mask whose answer the kill cut off
