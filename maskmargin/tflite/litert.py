"""A TFLite graph's CPU forward through LiteRT (the `ai-edge-litert` package), where it is installed.

Torch's eager CPU kernels pay ~50 us of fixed cost per small convolution (a oneDNN call), which dominates
MediaPipe's mobile graphs (150 convolutions on 4x4 to 96x96 maps): LiteRT's XNNPACK runs the same files
2.5-4x faster per image. Same file, same program: where LiteRT lacks an operator (MediaPipe's custom ops of
the attention mesh), the torch module's own step runs it, and the graph is cut around it into sub-graphs,
each a copy of the file whose operator, input and output lists are re-pointed (no weights are rewritten).
Choose with MASKMARGIN_TFLITE_RUNTIME: auto (LiteRT on the CPU when installed), torch, or litert; GPU and
MPS tensors always run in torch.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .schema import BUILTIN_NAMES, Table

if TYPE_CHECKING:
    from .interpreter import TFLiteModule

log = logging.getLogger(__name__)

RUNTIME_VARIABLE = "MASKMARGIN_TFLITE_RUNTIME"
THREADS_VARIABLE = "MASKMARGIN_LITERT_THREADS"
RUNTIMES = ("auto", "torch", "litert")
INSTALL_HINT = "pip install ai-edge-litert (wheels for Linux x86_64/aarch64, Windows x64, macOS arm64)"
# a sub-graph worth a LiteRT call: it holds real arithmetic (not only reshapes, slices and the like)
_HEAVY = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESIZE_BILINEAR"}


class RuntimeChoiceError(ValueError):
    """MASKMARGIN_TFLITE_RUNTIME names an unknown runtime, or LiteRT when it is not installed."""


@cache
def _interpreter_class() -> Any | None:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter


def installed() -> bool:
    return _interpreter_class() is not None


def runtime() -> str:
    """The CPU runtime asked for: "torch" or "litert" (auto resolved; an impossible choice is an error)."""
    asked = os.environ.get(RUNTIME_VARIABLE, "auto").strip().lower() or "auto"
    if asked not in RUNTIMES:
        raise RuntimeChoiceError(f"{RUNTIME_VARIABLE}={asked!r}: use one of {', '.join(RUNTIMES)}")
    if asked == "litert" and not installed():
        raise RuntimeChoiceError(f"{RUNTIME_VARIABLE}=litert but ai-edge-litert is not installed: {INSTALL_HINT}")
    if asked == "auto":
        return "litert" if installed() else "torch"
    return asked


def threads() -> int:
    """LiteRT threads per interpreter: 1 unless MASKMARGIN_LITERT_THREADS says more. One is MediaPipe's own
    default on desktops, faster at batch 1 on 2 cores here, and does not stall when other work holds the
    cores (a thread pool waits for its slowest thread); batches keep the pipeline's other threads busy."""
    raw = os.environ.get(THREADS_VARIABLE, "1").strip() or "1"
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise RuntimeChoiceError(f"{THREADS_VARIABLE}={raw!r}: use a whole number of threads, 1 or more")
    return value


def subgraph_bytes(data: bytes, operators: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """A copy of the .tflite file whose subgraph 0 runs only `operators` (indices, in order) from `inputs` to
    `outputs`. Flatbuffer offsets point forward only, so the operator list is rewritten in place (a subset in
    order always points forward) and the new input and output lists are appended after everything else."""
    if sorted(operators) != operators or not operators:
        raise ValueError("operators must be a non-empty increasing list")
    out = bytearray(data)
    root = Table(data, struct.unpack_from("<I", data, 0)[0])
    graph = root.tables(2)[0]

    def field_at(field_id: int) -> int:
        off = graph._offset(field_id)
        if not off:
            raise ValueError(f"subgraph field {field_id} is absent")
        return graph.pos + off

    ops_field = field_at(3)
    ops_vec = ops_field + struct.unpack_from("<I", data, ops_field)[0]
    targets = [ops_vec + 4 + 4 * k + struct.unpack_from("<I", data, ops_vec + 4 + 4 * k)[0] for k in operators]
    struct.pack_into("<I", out, ops_vec, len(operators))
    for j, target in enumerate(targets):
        struct.pack_into("<I", out, ops_vec + 4 + 4 * j, target - (ops_vec + 4 + 4 * j))
    for field_id, values in ((1, inputs), (2, outputs)):
        out += b"\0" * (-len(out) % 4)
        at = field_at(field_id)
        struct.pack_into("<I", out, at, len(out) - at)
        out += struct.pack(f"<I{len(values)}i", len(values), *values)
    return bytes(out)


@dataclass
class _Stage:
    """Either a LiteRT sub-graph (`content`, read from `inputs`, written to `outputs`) or torch steps."""

    content: bytes | None
    inputs: list[int]
    outputs: list[int]
    steps: list[Callable[[list], None]]


class LiteRTRunner:
    """`run(image)` = `module.forward(image)` on the CPU, through LiteRT where it can run the operators."""

    def __init__(self, module: TFLiteModule, data: bytes):
        self.module = module
        # LiteRT interpreters are not thread-safe: each call takes a set of its own, returned after; sets are
        # kept (building one packs the weights again, ms), as many as calls have run at once
        self._idle: list[list[Any]] = []
        self._idle_lock = threading.Lock()
        interpreter = _interpreter_class()
        if interpreter is None:
            raise RuntimeChoiceError(f"ai-edge-litert is not installed: {INSTALL_HINT}")
        model = module.model
        try:
            interpreter(model_content=data).allocate_tensors()
            self.stages = [_Stage(data, list(model.inputs), list(model.outputs), [])]
        except (RuntimeError, ValueError) as error:  # an operator LiteRT does not have: cut around it
            builtin = set(BUILTIN_NAMES.values()) - {"CUSTOM"}
            if all(op.op in builtin for op in model.operators):
                raise RuntimeError(
                    f"LiteRT cannot run {module.name} ({error}); {RUNTIME_VARIABLE}=torch runs it in torch"
                ) from error
            log.debug("%s: LiteRT lacks an operator (%s); cut around its custom operators", module.name, error)
            self.stages = self._cut(data)

    def _cut(self, data: bytes) -> list[_Stage]:
        model, module = self.module.model, self.module
        builtin = set(BUILTIN_NAMES.values()) - {"CUSTOM"}
        const = {t.index for t in model.tensors if t.data is not None and t.data.size}
        const_ops: dict[int, int] = {}  # constant tensor made by an op (DEQUANTIZE of fp16 weights) -> the op
        producer: dict[int, int] = {}
        level: dict[int, int] = {}
        for k, op in enumerate(model.operators):
            live = [i for i in op.inputs if i >= 0 and i not in const]
            if not live:
                const.update(op.outputs)
                const_ops.update((o, k) for o in op.outputs)
                continue
            # one level deeper behind every torch-run (custom) operator: a level's LiteRT part, then its customs
            level[k] = max(
                (level[producer[i]] + (model.operators[producer[i]].op not in builtin) for i in live if i in producer),
                default=0,
            )
            producer.update((o, k) for o in op.outputs)
        stages: list[_Stage] = []
        for lv in range(max(level.values()) + 1):
            ops = [k for k in level if level[k] == lv and model.operators[k].op in builtin]
            if ops and any(model.operators[k].op in _HEAVY for k in ops):
                stages.append(self._litert_stage(data, ops, level, const, const_ops))
            elif ops:
                stages.append(_Stage(None, [], [], [module.step_of(k) for k in ops]))
            customs = [k for k in level if level[k] == lv and model.operators[k].op not in builtin]
            if customs:
                stages.append(_Stage(None, [], [], [module.step_of(k) for k in customs]))
        return stages

    def _litert_stage(
        self, data: bytes, ops: list[int], level: dict[int, int], const: set[int], const_ops: dict[int, int]
    ) -> _Stage:
        model = self.module.model
        inside = set(ops)
        made = {o for k in ops for o in model.operators[k].outputs}
        needed: set[int] = set()
        inputs: list[int] = []
        for k in ops:
            for i in model.operators[k].inputs:
                if i in const_ops:
                    needed.add(const_ops[i])
                elif i >= 0 and i not in const and i not in made and i not in inputs:
                    inputs.append(i)
        while True:  # constant ops feeding constant ops (DENSIFY then DEQUANTIZE)
            more = {const_ops[i] for k in needed for i in model.operators[k].inputs if i in const_ops} - needed
            if not more:
                break
            needed |= more
        read_outside = {i for k, op in enumerate(model.operators) if k not in inside and k in level for i in op.inputs}
        outputs = [o for o in sorted(made) if o in read_outside or o in model.outputs]
        content = subgraph_bytes(data, sorted(inside | needed), inputs, outputs)
        return _Stage(content, inputs, outputs, [])

    def _take(self) -> list[Any]:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        cls = _interpreter_class()
        assert cls is not None
        made = []
        for stage in self.stages:
            it = None
            if stage.content is not None:
                it = cls(model_content=stage.content, num_threads=threads())
                it.allocate_tensors()
            made.append(it)
        return made

    def _give_back(self, interpreters: list[Any]) -> None:
        with self._idle_lock:
            self._idle.append(interpreters)

    def run(self, image: torch.Tensor) -> list[torch.Tensor]:
        """`image`: [B, C, H, W] float on the CPU; the outputs in the file's layout, as `forward` gives them."""
        module = self.module
        env: list[torch.Tensor | None] = [None] * len(module.model.tensors)
        env[module.input_index[0]] = image
        interpreters = self._take()
        try:
            self._run_stages(env, interpreters, image.shape[0])
        finally:
            self._give_back(interpreters)
        return module.outputs_of(env)

    def _run_stages(self, env: list[torch.Tensor | None], interpreters: list[Any], batch: int) -> None:
        module = self.module
        for stage, it in zip(self.stages, interpreters, strict=True):
            if it is None:
                for step in stage.steps:
                    step(env)
                continue
            feeds = []
            for i in stage.inputs:
                x = env[i]
                assert x is not None
                feeds.append(np.ascontiguousarray(module.to_file_layout(x, i).float().numpy()))
            results: list[list[np.ndarray]] = [[] for _ in stage.outputs]
            for b in range(batch):
                for i, feed in zip(stage.inputs, feeds, strict=True):
                    it.set_tensor(i, feed[b : b + 1])
                it.invoke()
                for got, o in zip(results, stage.outputs, strict=True):
                    got.append(it.get_tensor(o))
            for o, got in zip(stage.outputs, results, strict=True):
                joined = got[0] if len(got) == 1 else np.concatenate(got)  # get_tensor gave a copy already
                env[o] = module.from_file_layout(torch.from_numpy(joined), o)
