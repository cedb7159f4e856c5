"""Importing mediapipe and choosing between its two APIs.

mediapipe 0.10.21 (Python <= 3.12) ships `mp.solutions` with the models inside the wheel;
from 0.10.30 (and on Python 3.13) only the Tasks API exists and model files are separate.
`MASKMARGIN_MEDIAPIPE_API=tasks` forces the Tasks API (useful to test it on 0.10.21).
A broken install raises BackendBroken: it must never look like "nothing detected".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import BackendBroken, ModelNotAvailable

INSTALL_HINT = (
    "Install it into ComfyUI's Python: `python -m pip install mediapipe==0.10.21` on Python <= 3.12 "
    "(it needs numpy<2 and protobuf<5), or `mediapipe>=0.10.30` on Python 3.13 with the model files "
    "in models/mediapipe/."
)


def import_mediapipe() -> ModuleType:
    # mediapipe's C++ logging floods stderr with INFO/WARNING lines on every graph; keep errors only
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp
    except Exception as exc:  # ImportError, or a binary/protobuf mismatch raising anything
        raise BackendBroken(f"mediapipe cannot be imported ({type(exc).__name__}: {exc}). {INSTALL_HINT}") from exc
    return mp


def use_solutions() -> bool:
    """True when the legacy `mp.solutions` API (bundled models) is present and not overridden."""
    if os.environ.get("MASKMARGIN_MEDIAPIPE_API", "").lower() == "tasks":
        return False
    mp = import_mediapipe()
    try:
        return hasattr(mp, "solutions") and hasattr(mp.solutions, "face_detection")
    except Exception:  # accessing mp.solutions can fail on half-installed wheels
        return False


def solutions() -> ModuleType:
    mp = import_mediapipe()
    try:
        return mp.solutions
    except Exception as exc:
        raise BackendBroken(f"mediapipe.solutions is unusable ({exc}). {INSTALL_HINT}") from exc


def bundled_file(relative: str) -> Path | None:
    """A model file inside the installed mediapipe wheel (0.10.21 ships several), if present."""
    mp = import_mediapipe()
    path = Path(str(mp.__file__)).parent / relative
    return path if path.is_file() else None


def model_file(names: tuple[str, ...], folders: tuple[Path, ...], bundled: str | None = None) -> Path:
    """The first of `names` found in `folders`, else the wheel's bundled copy; a clear error otherwise."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    if bundled:
        found = bundled_file(bundled)
        if found is not None:
            return found
    where = folders[0] if folders else Path("models/mediapipe")
    raise ModelNotAvailable(
        f"the mediapipe Tasks API needs the model file {names[0]} in {where} "
        f"(with mediapipe 0.10.21 on Python <= 3.12 no file is needed: its mp.solutions API has the models built in)",
        parameter="model",
    )


class GraphPool:
    """MediaPipe graphs made on demand: per key (a setting fixed when a graph is made, such as its
    confidence threshold), one graph for each thread using one at the same time, at most `per_key`
    (more callers wait for a free one: the service may run many requests at once).

    A graph is not re-entrant, but separate graphs run in parallel, each on a core of its own, so
    Image Mask's workers each take one. More than `max_keys` keys (a user sweeping a threshold) close
    the oldest key's graphs.
    """

    def __init__(self, make: Callable[[Hashable], Any], max_keys: int = 4, per_key: int = 8):
        self._make = make
        self._max_keys = max_keys
        self._per_key = per_key
        self._free: dict[Hashable, list[Any]] = {}
        self._made: dict[Hashable, int] = {}  # graphs of each key, free or in use
        self._returned = threading.Condition()

    @contextmanager
    def graph(self, key: Hashable = None) -> Iterator[Any]:
        with self._returned:
            if key not in self._free and len(self._free) >= self._max_keys:
                old = next(iter(self._free))
                for graph in self._free.pop(old):
                    close_quietly(graph)
                self._made.pop(old, None)
            free = self._free.setdefault(key, [])
            while not free and self._made.get(key, 0) >= self._per_key:
                self._returned.wait()
                free = self._free.setdefault(key, [])
            graph = free.pop() if free else None
            if graph is None:
                self._made[key] = self._made.get(key, 0) + 1
        if graph is None:
            try:
                graph = self._make(key)
            except BaseException:
                with self._returned:
                    if key in self._made:
                        self._made[key] -= 1
                raise
        try:
            yield graph
        finally:
            with self._returned:
                home = self._free.get(key)
                if home is not None:
                    home.append(graph)
                    self._returned.notify()
            if home is None:  # its key was dropped (or the pool closed) while the graph ran
                close_quietly(graph)

    def close(self) -> None:
        with self._returned:
            graphs = [g for free in self._free.values() for g in free]
            self._free.clear()
            self._made.clear()
            self._returned.notify_all()
        for graph in graphs:
            close_quietly(graph)


_shared: dict[Hashable, GraphPool] = {}
_shared_lock = threading.Lock()


def shared_pool(config: Hashable, make: Callable[[Hashable], Any]) -> GraphPool:
    """The one pool for graphs made alike (`config` says how): the face detector behind
    mediapipe_face_full and the eight mesh models is the same graph, and so are their face meshes, so
    they share graphs instead of each holding its own (a FaceMesh graph takes ~28 MiB)."""
    with _shared_lock:
        pool = _shared.get(config)
        if pool is None:
            pool = _shared[config] = GraphPool(make)
        return pool


def close_quietly(graph: Any) -> None:
    """Close a mediapipe graph; a graph that already stopped (Tasks API) raises, which is not an error here."""
    try:
        graph.close()
    except (ValueError, RuntimeError):
        pass
