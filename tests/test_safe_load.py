"""The allow-list loader: real YOLO checkpoints load, hostile pickles are refused without running."""

import hashlib
import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no DNS probes, no downloads

import collections
import pathlib
import sys
import threading
import types

import numpy as np
import pytest
import torch

from maskmargin.backends.yolo import YoloDetector
from maskmargin.errors import ModelNotAvailable, UnsafeModelFile
from maskmargin.registry import find_model
from maskmargin.safe_load import TRUST_ENV, load_checkpoint, load_yolo_checkpoint


@pytest.fixture(scope="session")
def yolo_file(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("safe") / "det.pt"
    YOLO("yolov8n.yaml").save(path)
    return path


@pytest.fixture(autouse=True)
def no_trust(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Reduce:
    """Pickles as `func(*args)`: what a hostile file uses to run code on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_yolo_checkpoint_loads_without_leaving_globals_registered(yolo_file):
    before = set(torch.serialization.get_safe_globals())
    ckpt = load_yolo_checkpoint(yolo_file)
    assert type(ckpt.data["model"]).__name__ == "DetectionModel"
    assert ckpt.sha256 == _sha(yolo_file) and not ckpt.trusted
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="Unsupported global"):  # torch's own list was not widened
        torch.load(yolo_file, weights_only=True)


def test_concurrent_loads(yolo_file):
    results, errors = [], []

    def work():
        try:
            results.append(load_yolo_checkpoint(yolo_file).sha256)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


@pytest.fixture
def legacy_file(tmp_path, monkeypatch):
    """A checkpoint spelled like ultralytics 8.0.x wrote them (adetailer's files)."""
    from ultralytics import YOLO
    from ultralytics.nn import modules
    from ultralytics.nn.modules import head
    from ultralytics.utils import IterableSimpleNamespace

    yolo = YOLO("yolov8n.yaml")
    for name in ("Conv", "C2f", "SPPF", "Bottleneck", "Concat", "Detect", "DFL"):
        monkeypatch.setattr(getattr(modules, name), "__module__", "ultralytics.nn.modules")
    old_utils = types.ModuleType("ultralytics.yolo.utils")
    old_utils.IterableSimpleNamespace = IterableSimpleNamespace
    monkeypatch.setitem(sys.modules, "ultralytics.yolo.utils", old_utils)
    monkeypatch.setattr(IterableSimpleNamespace, "__module__", "ultralytics.yolo.utils")

    class WindowsPath(pathlib.PurePosixPath):  # stands in for a path pickled on Windows
        pass

    WindowsPath.__module__, WindowsPath.__qualname__ = "pathlib", "WindowsPath"
    monkeypatch.setattr(pathlib, "WindowsPath", WindowsPath)

    from ultralytics.utils import loss, tal

    for module, cls in ((loss, loss.v8DetectionLoss), (loss, loss.BboxLoss), (tal, tal.TaskAlignedAssigner)):
        old_name = module.__name__.replace("ultralytics.utils", "ultralytics.yolo.utils")
        old_module = sys.modules.get(old_name) or types.ModuleType(old_name)
        setattr(old_module, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, old_name, old_module)
        monkeypatch.setattr(cls, "__module__", old_name)

    model = yolo.model
    model.args = IterableSimpleNamespace(imgsz=640, save_dir=pathlib.PosixPath("/runs/train"))
    criterion = object.__new__(loss.v8DetectionLoss)  # training loss left attached, as some versions did
    criterion.__dict__.update(
        bce=torch.nn.BCEWithLogitsLoss(reduction="none"),
        assigner=tal.TaskAlignedAssigner(),
        bbox_loss=loss.BboxLoss(16),
        hyp=model.args,
        nc=80,
    )
    model.criterion = criterion
    model.old_forward = head.Detect.forward  # pickled as builtins.getattr(Detect, "forward")
    conv = model.model[0]
    conv.forward = conv.forward_fuse  # what fuse() leaves behind: getattr(<Conv>, "forward_fuse")
    ckpt = {
        "model": model.half(),
        "ema": None,
        "train_args": {"project": WindowsPath("C:/runs"), "imgsz": 640},
        "train_metrics": {"fitness": np.float64(0.5), "curve": np.arange(3, dtype=np.float32)},
        "date": "2023-04-01",
    }
    path = tmp_path / "legacy.pt"
    torch.save(ckpt, path)
    monkeypatch.undo()
    return path


def test_legacy_names_from_old_ultralytics_load(legacy_file):
    # Python 3.13 pickles paths as pathlib._local.*, older Pythons as pathlib.*; the loader takes both
    needed = {
        n.replace("pathlib._local.", "pathlib.")
        for n in torch.serialization.get_unsafe_globals_in_checkpoint(legacy_file)
    }
    assert {
        "ultralytics.nn.modules.Conv",
        "ultralytics.yolo.utils.IterableSimpleNamespace",
        "builtins.getattr",
        "pathlib.WindowsPath",
        "pathlib.PosixPath",
        "ultralytics.yolo.utils.loss.v8DetectionLoss",
        "ultralytics.yolo.utils.tal.TaskAlignedAssigner",
        "torch.nn.modules.loss.BCEWithLogitsLoss",
    } <= needed
    assert any(n.endswith("multiarray.scalar") for n in needed)
    ckpt = load_yolo_checkpoint(legacy_file)
    model = ckpt.data["model"]
    assert model.args.imgsz == 640 and model.args.save_dir == pathlib.Path("/runs/train")
    assert model.old_forward.__name__ == "forward"
    assert ckpt.data["train_metrics"]["fitness"] == 0.5
    assert ckpt.data["train_metrics"]["curve"].tolist() == [0, 1, 2]
    assert str(ckpt.data["train_args"]["project"]).startswith("C:")
    assert type(model.criterion).__name__ == "v8DetectionLoss" and model.criterion.nc == 80


def test_trusted_legacy_file_loads_with_full_pickle(legacy_file, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, _sha(legacy_file))
    ckpt = load_yolo_checkpoint(legacy_file)
    assert ckpt.trusted and ckpt.data["model"].args.imgsz == 640


def test_legacy_checkpoint_runs_through_the_detector(legacy_file):
    det = YoloDetector(find_model("face_yolov8n"), legacy_file, device="cpu")
    assert det.detect_all(np.zeros((64, 96, 3), np.uint8), 0.0) is not None


@pytest.mark.parametrize("kind", ["open", "system"])
def test_hostile_file_is_refused_and_nothing_runs(tmp_path, kind):
    target = tmp_path / "pwned.txt"
    payload = _Reduce(open, str(target), "w") if kind == "open" else _Reduce(os.system, f"touch {target}")
    evil = tmp_path / "evil.pt"
    torch.save({"model": payload}, evil)
    with pytest.raises(UnsafeModelFile) as err:
        load_checkpoint(evil)
    message = str(err.value)
    func = payload.func
    assert f"{func.__module__}.{func.__name__}" in message
    assert "own code was NOT run" in message
    assert _sha(evil) in message and TRUST_ENV in message
    assert not target.exists()


def test_hostile_file_loads_only_when_its_hash_is_trusted(tmp_path, monkeypatch):
    target = tmp_path / "created.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Reduce(open, str(target), "w")}, evil)
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join(["0" * 64, _sha(evil).upper()]))
    ckpt = load_checkpoint(evil)
    ckpt.data["model"].close()
    assert ckpt.trusted and target.exists()  # trust really switches the allow-list off


def test_allowed_classes_are_never_called_with_arguments_from_the_file(tmp_path, monkeypatch):
    """REDUCE on DetectionModel would run its __init__, which eval()s the config's activation."""
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.tasks import DetectionModel

    monkeypatch.setattr(Conv, "default_act", Conv.default_act)  # the trusted load below replaces it
    target = tmp_path / "ran.txt"
    act = f"(__import__('pathlib').Path({str(target)!r}).touch(), __import__('torch').nn.SiLU())[1]"
    cfg = {"nc": 1, "activation": act, "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": []}
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Reduce(DetectionModel, cfg)}, evil)

    with pytest.raises(ModelNotAvailable, match="not an ultralytics YOLO checkpoint"):
        load_yolo_checkpoint(evil)
    assert not target.exists()

    monkeypatch.setenv(TRUST_ENV, _sha(evil))  # the same file, trusted, does run the config
    try:
        load_checkpoint(evil)
    except ModelNotAvailable:
        pass
    assert target.exists()


@pytest.mark.parametrize("obj", [collections.OrderedDict(), torch.nn.Identity()])
def test_getattr_is_limited_to_module_methods(tmp_path, obj):
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Reduce(getattr, obj, "__reduce_ex__")}, evil)
    with pytest.raises(UnsafeModelFile, match="getattr"):
        load_checkpoint(evil)


def test_modules_from_other_packages_are_refused(tmp_path):
    from torchvision.ops.misc import Permute

    path = tmp_path / "other.pt"
    torch.save({"model": Permute([0, 1])}, path)
    with pytest.raises(UnsafeModelFile, match="torchvision.ops.misc.Permute"):
        load_checkpoint(path)


def test_damaged_files_are_not_available(tmp_path, yolo_file):
    blob = yolo_file.read_bytes()
    cases = {
        "truncated.pt": blob[: len(blob) // 2],
        "tail_cut.pt": blob[:-100],
        "empty.pt": b"",
        "html.pt": b"<html>404 Not Found</html>",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelNotAvailable) as err:
            load_yolo_checkpoint(path)
        assert str(path) in str(err.value) and "download it again" in str(err.value), name
    with pytest.raises(ModelNotAvailable, match="cannot read"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_pytorch_file_without_a_model_is_not_a_yolo_checkpoint(tmp_path):
    path = tmp_path / "weights_only.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ModelNotAvailable, match="not an ultralytics YOLO checkpoint"):
        load_yolo_checkpoint(path)


def test_a_plain_pickle_is_refused_as_a_format_we_do_not_load_and_nothing_runs(tmp_path):
    target = tmp_path / "ran.txt"
    path = tmp_path / "plain.pt"
    import pickle

    path.write_bytes(pickle.dumps({"model": _Reduce(exec, f"open({str(target)!r}, 'w').close()")}, protocol=4))
    with pytest.raises(ModelNotAvailable) as err:
        load_yolo_checkpoint(path)
    assert err.value.message == (
        f"model file {path} is a plain pickle, not a checkpoint format we load (a PyTorch .pt zip archive); "
        "nothing in it was run. Use a YOLO .pt saved by ultralytics or torch.save"
    )
    assert err.value.parameter == "model" and not target.exists()


def test_hooks_a_file_attaches_to_its_modules_are_emptied_on_load(tmp_path, yolo_file):
    from ultralytics.nn.tasks import DetectionModel

    ckpt = torch.load(yolo_file, weights_only=False)
    model = ckpt["model"]
    first, second = model.model[0], model.model[1]
    # allowed methods bound to the file's own modules, run at every inference if left in place
    first.register_forward_hook(second.forward)
    second.register_forward_pre_hook(first.forward)
    model.register_forward_hook(first.forward)
    hooked = tmp_path / "hooked.pt"
    torch.save(ckpt, hooked)
    carried = torch.load(hooked, weights_only=False)["model"]
    assert len(carried.model[0]._forward_hooks) == 1 and len(carried._forward_hooks) == 1  # the file has them
    with pytest.raises(Exception):  # noqa: B017  (what the hooks do to a forward pass: any failure)
        carried.float()(torch.zeros(1, 3, 64, 64))

    loaded = load_yolo_checkpoint(hooked).data["model"]
    assert isinstance(loaded, DetectionModel)
    tables = [name for name in dir(torch.nn.Module()) if name.startswith("_") and name.endswith("hooks")]
    assert "_forward_hooks" in tables and "_forward_pre_hooks" in tables
    assert all(not getattr(m, name) for m in loaded.modules() for name in tables if isinstance(getattr(m, name), dict))
    out = loaded.float().eval()(torch.zeros(1, 3, 64, 64))  # a forward pass runs the model, nothing else
    assert isinstance(out, (tuple, list, torch.Tensor))


def test_a_module_method_bound_to_another_module_is_refused(tmp_path, yolo_file):
    ckpt = torch.load(yolo_file, weights_only=False)
    first, second = ckpt["model"].model[0], ckpt["model"].model[1]
    first.forward = second.forward  # the second conv would run in the first one's place
    path = tmp_path / "rebound.pt"
    torch.save(ckpt, path)
    with pytest.raises(UnsafeModelFile) as err:
        load_yolo_checkpoint(path)
    assert err.value.message.startswith(
        f"{path} was not loaded: it binds Conv.forward to a method of another module, which would run at every "
        "inference. The file's own code was NOT run."
    )
