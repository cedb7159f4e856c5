"""Load YOLO `.pt` checkpoints without running code from the file.

A `.pt` file is a pickle: loading it normally can run any code its author chose. Here a file is
loaded with `torch.load(weights_only=True)` plus an allow-list of what a YOLO checkpoint needs
(nn.Module classes of torch and ultralytics, ultralytics' config namespace, numpy scalars and
arrays, paths, and a `getattr` limited to module methods). Anything else is refused with
`UnsafeModelFile`, which names what the file wanted and how to trust it explicitly by its SHA-256
(`MASKMARGIN_TRUSTED_MODELS`); only a trusted file is unpickled without restrictions.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import pickle
import re
import secrets
import sys
import threading
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import BackendBroken, ModelNotAvailable, UnsafeModelFile

# Importing ultralytics probes the network (DNS, version checks) unless told it is offline; the pack
# must never touch the network by itself. Everything that imports ultralytics goes through here first.
os.environ.setdefault("YOLO_OFFLINE", "1")

TRUST_ENV = "MASKMARGIN_TRUSTED_MODELS"

# Classes may be instantiated only if they come from these modules (and are nn.Module subclasses).
_MODULE_PACKAGES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks")
# Checkpoints saved with the training loss attached carry these (built, never called, at inference).
_TRAINING_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")

# Names that older ultralytics releases pickled and the installed one spells differently.
_LEGACY_MODULES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}
_LEGACY_CLASSES = {
    "ultralytics.nn.modules.block.Silence": ("torch.nn", "Identity"),
    "ultralytics.nn.tasks.YOLOv10DetectionModel": ("ultralytics.nn.tasks", "DetectionModel"),
    "ultralytics.utils.loss.v10DetectLoss": ("ultralytics.utils.loss", "E2EDetectLoss"),
}

# Real classes must be on torch's list for the unpickler to fill in their state, but under their
# own names they would also be callable with arguments from the file (running __init__, which for
# ultralytics models parses a config and can eval() strings). They are listed under a name no file
# can know in advance; the file's names map to constructors that never run __init__.
_HIDDEN_PREFIX = f"maskmargin_build_only_{secrets.token_hex(8)}"

_lock = threading.Lock()


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the unpickled object, and what was loaded."""

    data: Any
    path: Path
    sha256: str
    trusted: bool  # True: loaded without the allow-list because its hash is in MASKMARGIN_TRUSTED_MODELS


def trusted_hashes() -> set[str]:
    """SHA-256 hashes the user allows to load without the allow-list (MASKMARGIN_TRUSTED_MODELS)."""
    raw = os.environ.get(TRUST_ENV, "")
    return {h.lower() for h in re.split(r"[\s,;:" + re.escape(os.pathsep) + r"]+", raw) if h}


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Unpickle a `.pt` file through the allow-list (or fully, if its SHA-256 is trusted).

    Raises UnsafeModelFile when the file needs anything outside the allow-list (nothing from it is
    run), ModelNotAvailable when it is missing, damaged or not a PyTorch checkpoint.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()  # read once: what is checked is what is loaded
    except OSError as e:
        raise ModelNotAvailable(f"cannot read model file {path}: {e}", parameter="model") from e
    digest = hashlib.sha256(blob).hexdigest()
    if digest in trusted_hashes():
        return Checkpoint(_load_trusted(blob, path), path, digest, True)
    return Checkpoint(_load_restricted(blob, path, digest), path, digest, False)


def load_yolo_checkpoint(path: str | Path) -> Checkpoint:
    """`load_checkpoint`, then check that the file holds an ultralytics model (as `data["model"]`)."""
    ckpt = load_checkpoint(path)
    data = ckpt.data
    if isinstance(data, torch.nn.Module):  # saved with torch.save(model) instead of YOLO.save()
        data = {"model": data}
    model = None
    if isinstance(data, dict):
        model = data.get("ema") if data.get("ema") is not None else data.get("model")
    # An object the unpickler created but never filled has no _modules: not a usable model.
    if not isinstance(model, torch.nn.Module) or "_modules" not in vars(model):
        raise ModelNotAvailable(
            f"{path} is a PyTorch file but not an ultralytics YOLO checkpoint (no model inside); "
            "use a YOLO detection or segmentation .pt file",
            parameter="model",
        )
    return Checkpoint(data, ckpt.path, ckpt.sha256, ckpt.trusted)


def _load_restricted(blob: bytes, path: Path, digest: str) -> Any:
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise BackendBroken(
            f"loading {path.name} safely needs torch >= 2.6 (installed: {torch.__version__}); upgrade torch, "
            f"or trust this file explicitly: {_trust_hint(digest)}"
        )
    with _lock:  # torch's allow-list is one process-wide set: one restricted load at a time
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(blob))
        except Exception as e:
            raise _damaged(path, blob, e) from e
        entries, refused = _allow_entries(needed)
        if refused:
            raise UnsafeModelFile(
                f"{path} was not loaded: it refers to code outside the allow-list for YOLO checkpoints: "
                f"{', '.join(sorted(refused))}. The file's own code was NOT run. Only use it if you know where it "
                f"comes from; then {_trust_hint(digest)}",
                parameter="model",
            )
        before = set(torch.serialization.get_safe_globals())
        added = [e for e in entries if e not in before]
        torch.serialization.add_safe_globals(added)
        try:
            data = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeModelFile(
                f"{path} was not loaded: the restricted loader refused it ({_reason(e)}). The file's own code "
                "was NOT run. "
                f"Only use it if you know where it comes from; then {_trust_hint(digest)}",
                parameter="model",
            ) from e
        except Exception as e:
            raise _damaged(path, blob, e) from e
        finally:
            _remove_safe_globals(added)
    foreign = _without_hooks(data)
    if foreign:
        raise UnsafeModelFile(
            f"{path} was not loaded: it binds {foreign} to a method of another module, which would run at every "
            f"inference. The file's own code was NOT run. Only use it if you know where it comes from; then "
            f"{_trust_hint(digest)}",
            parameter="model",
        )
    return data


def _load_trusted(blob: bytes, path: Path) -> Any:
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False, pickle_module=_legacy_pickle)
    except Exception as e:
        raise ModelNotAvailable(
            f"trusted model file {path} could not be loaded: {type(e).__name__}: {e}", parameter="model"
        ) from e


# nn.Module's hook tables: a file may fill them with allowed methods (bound to modules of its own)
# that would then run at every inference; a YOLO checkpoint needs none of them
_HOOK_TABLES = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


def _without_hooks(data: Any) -> str | None:
    """Empty every hook table of every nn.Module in `data` (in place: the object is our own); returns the
    first module attribute bound to another object's method (`<Class>.<name>`), None if there is none.

    An attribute bound to its own module is what `fuse()` leaves (`forward = forward_fuse`); one bound to
    another module would make that module's method run in this one's place."""
    foreign: str | None = None
    seen: set[int] = set()
    stack = [data]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):  # its state straight from vars(): an unfilled module has none
            state = vars(obj)
            for name in _HOOK_TABLES:
                table = state.get(name)
                if isinstance(table, dict):
                    table.clear()
            for name, value in state.items():
                if foreign is None and isinstance(value, types.MethodType) and value.__self__ is not obj:
                    foreign = f"{type(obj).__name__}.{name}"
            children = state.get("_modules")
            if isinstance(children, dict):
                stack.extend(children.values())
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
    return foreign


def _reason(error: Exception) -> str:
    """The line of torch's weights-only error that says what was refused, without its boilerplate."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    return " ".join(text.split())


def _trust_hint(digest: str) -> str:
    return (
        f"trust it explicitly by adding its SHA-256 {digest} to the environment variable {TRUST_ENV} "
        f"(several hashes separated by {os.pathsep!r}) and restarting; a trusted file is loaded with "
        "full pickle, which can run code from the file"
    )


def _damaged(path: Path, blob: bytes, error: Exception) -> ModelNotAvailable:
    if "torchscript" in str(error).lower():
        what = "a TorchScript archive, not a YOLO .pt checkpoint"
    elif not zipfile.is_zipfile(io.BytesIO(blob)):
        if blob[:1] == b"\x80" and blob[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            return ModelNotAvailable(
                f"model file {path} is a plain pickle, not a checkpoint format we load (a PyTorch .pt zip "
                "archive); nothing in it was run. Use a YOLO .pt saved by ultralytics or torch.save",
                parameter="model",
            )
        what = f"not a PyTorch checkpoint (not a zip archive; {len(blob)} bytes): damaged or incomplete"
    else:
        what = f"damaged or incomplete ({type(error).__name__}: {error})"
    return ModelNotAvailable(f"model file {path} is {what}; download it again", parameter="model")


def _remove_safe_globals(entries: list) -> None:
    if not entries:
        return
    remove = getattr(torch.serialization, "_remove_safe_globals", None) or getattr(
        torch._weights_only_unpickler, "_remove_safe_globals", None
    )
    if remove is not None:
        remove(entries)
        return
    keep = [e for e in torch.serialization.get_safe_globals() if e not in set(entries)]
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(keep)


# ---------------------------------------------------------------------------------------------
# The allow-list


def _allow_entries(needed: list[str]) -> tuple[list, list[str]]:
    """torch allow-list entries for the globals a file needs, and the names that are not allowed."""
    entries: list = []
    refused: list[str] = []
    for name in needed:
        found = _resolve(name)
        if found is None:
            refused.append(name)
        else:
            entries += found
    return entries, refused


def _resolve(name: str) -> list | None:
    fixed = _fixed_entries()
    if name in fixed:
        return fixed[name]
    cls = _module_class(name)
    if cls is None:
        return None
    return [(_cached_build_only(cls), name), (cls, f"{_HIDDEN_PREFIX}.{cls.__module__}.{cls.__qualname__}")]


def _module_class(name: str) -> type | None:
    """The class a checkpoint names, if it is an nn.Module of torch.nn / ultralytics.nn, or one of the
    training-time objects (losses, assigners) some ultralytics versions left inside their checkpoints."""
    module, _, attr = name.rpartition(".")
    module = _modern_module(module)
    is_nn = module in _MODULE_PACKAGES or module.startswith(("torch.nn.modules.", "ultralytics.nn.modules."))
    if not (is_nn or module in _TRAINING_MODULES):
        return None
    if module.startswith("ultralytics"):
        _import_ultralytics_nn()
    module, attr = _LEGACY_CLASSES.get(name, (module, attr))
    # Look only at modules already imported by torch.nn / ultralytics.nn: a name in a file never
    # decides what gets imported.
    obj = getattr(sys.modules.get(module), attr, None)
    if not isinstance(obj, type):
        return None
    if is_nn:
        ok = issubclass(obj, torch.nn.Module) and obj.__module__.startswith(("torch.nn.", "ultralytics.nn."))
    else:
        ok = obj.__module__ == module
    return obj if ok else None


def _modern_module(module: str) -> str:
    for old, new in _LEGACY_MODULES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


def _import_ultralytics_nn() -> None:
    try:
        import ultralytics.nn.tasks  # noqa: F401  (also imports ultralytics.nn.modules.*)
    except Exception as e:
        raise ultralytics_broken(e) from e


def ultralytics_broken(e: Exception) -> BackendBroken:
    """The error for an ultralytics that cannot be imported: never reported as "nothing detected"."""
    return BackendBroken(
        f"ultralytics is not installed or broken ({type(e).__name__}: {e}); "
        "install ultralytics>=8.3.47 to use YOLO models"
    )


def _build_only(cls: type) -> type:
    """A stand-in for `cls` that only allocates: calling it never runs `cls.__init__`."""

    def __new__(_stand_in, *_args, **_kwargs):
        return cls.__new__(cls)  # type: ignore[call-overload]  # cls is any allow-listed class

    return type(cls.__name__, (), {"__new__": __new__, "__module__": __name__})


_build_only_cache: dict[type, type] = {}
_real_class: dict[type, type] = {}  # stand-in -> the class it builds


def _cached_build_only(cls: type) -> type:
    if cls not in _build_only_cache:
        stand_in = _build_only(cls)
        _build_only_cache[cls] = stand_in
        _real_class[stand_in] = cls
    return _build_only_cache[cls]


def _module_getattr(obj: Any, name: str) -> Any:
    """`getattr` for unpickling: only methods of nn.Module classes or instances (e.g. `Detect.forward`)."""
    if isinstance(obj, type):
        obj = _real_class.get(obj, obj)  # the file named the class, so it got the stand-in
    if isinstance(name, str) and name.isidentifier() and not name.startswith("_"):
        cls = obj if isinstance(obj, type) else type(obj)
        if issubclass(cls, torch.nn.Module):
            # Static lookup: no properties, __getattr__ or descriptors run.
            func = inspect.getattr_static(cls, name, None)
            if isinstance(func, types.FunctionType):
                return func if isinstance(obj, type) else types.MethodType(func, obj)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed in a model file")


_fixed: dict[str, list] | None = None


def _fixed_entries() -> dict[str, list]:
    """Allowed non-module globals (checkpoint metadata), each name -> torch allow-list entries."""
    global _fixed
    if _fixed is not None:
        return _fixed
    import pathlib

    import numpy as np

    local_path = pathlib.WindowsPath if os.name == "nt" else pathlib.PosixPath
    fixed: dict[str, list] = {"builtins.getattr": [(_module_getattr, "builtins.getattr")]}
    for module in ("pathlib", "pathlib._local"):
        for cls_name in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"):
            fixed[f"{module}.{cls_name}"] = [(local_path, f"{module}.{cls_name}")]

    # numpy >= 2 pickles numpy._core, numpy 1.x numpy.core; either loads with either.
    scalar = np.float64(0).__reduce__()[0]
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUV"}
    fixed["numpy.dtype"] = [np.dtype] + [(c, f"{_HIDDEN_PREFIX}.numpy.{c.__name__}") for c in dtype_classes]
    fixed["numpy.ndarray"] = [np.ndarray]
    for core in ("numpy.core", "numpy._core"):
        fixed[f"{core}.multiarray.scalar"] = [(scalar, f"{core}.multiarray.scalar")]
        fixed[f"{core}.multiarray._reconstruct"] = [(reconstruct, f"{core}.multiarray._reconstruct")]

    def namespace() -> type | None:
        try:
            from ultralytics.utils import IterableSimpleNamespace
        except Exception:
            return None
        return IterableSimpleNamespace

    ns = namespace()
    if ns is not None:
        for name in ("ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace"):
            fixed[name] = [(ns, name)]
    _fixed = fixed
    return fixed


# ---------------------------------------------------------------------------------------------
# Trusted files: full pickle, with the same legacy names mapped to today's classes.


class _LegacyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _LEGACY_CLASSES:
            module, name = _LEGACY_CLASSES[full]
        module = _modern_module(module)
        if module == "pathlib" and name in ("WindowsPath", "PosixPath"):
            name = "WindowsPath" if os.name == "nt" else "PosixPath"
        return super().find_class(module, name)


_legacy_pickle = types.ModuleType("maskmargin_legacy_pickle")
_legacy_pickle.Unpickler = _LegacyUnpickler  # type: ignore[attr-defined]
_legacy_pickle.load = lambda file, **kw: _LegacyUnpickler(file, **kw).load()  # type: ignore[attr-defined]
_legacy_pickle.__dict__.update({k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL")})
