"""Execute a TFLite graph as a torch nn.Module: NCHW, any batch size, on any device.

At load every constant is folded once (float16 weights through DEQUANTIZE become float32, CSR-sparse
weights through DENSIFY become dense), convolution weights are laid out for torch, and the remaining
operators become a list of steps. 4-D activations live in NCHW (the file's NHWC shapes say which axis is
which); tensors of other ranks keep the file's layout. Dimension 0 is the batch everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import custom_ops, litert
from .schema import Model, Operator, Sparsity, Table, Tensor, read_model

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
AXIS_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}

Step = Callable[[list[torch.Tensor | None]], None]


class UnsupportedModel(ValueError):
    """The file uses an operator (or an option of one) that this interpreter does not execute."""


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Sparsity) -> np.ndarray:
    """A dense array from TFLite's sparse format (dense leading dimensions, CSR-compressed ones after)."""
    dense_lead = all(f == 0 for f in sparsity.formats[:-1]) and sparsity.formats[-1:] == [1]
    if sparsity.traversal_order != list(range(len(shape))) or not dense_lead:
        raise UnsupportedModel(f"sparse layout {sparsity.traversal_order} {sparsity.formats} is not supported")
    segments, indices = sparsity.segments[-1], sparsity.indices[-1]
    assert segments is not None and indices is not None
    rows = int(np.prod(shape[:-1]))
    out = np.zeros((rows, shape[-1]), dtype=values.dtype)
    counts = np.diff(segments)
    row_of = np.repeat(np.arange(rows), counts)
    out[row_of, indices] = values[: len(indices)]
    return out.reshape(shape)


def _activation(code: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if code == 0:
        return None
    if code == 1:
        return F.relu
    if code == 2:
        return lambda x: x.clamp(-1.0, 1.0)
    if code == 3:
        return lambda x: x.clamp(0.0, 6.0)
    if code == 4:
        return torch.tanh
    raise UnsupportedModel(f"fused activation {code}")


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _opt(options: Table | None, field_id: int, fmt: str, default: int | float = 0) -> int | float:
    return default if options is None else options.scalar(field_id, fmt, default)


class TFLiteModule(nn.Module):
    """A .tflite graph (subgraph 0) as a module; `forward` takes NCHW float images, returns the outputs."""

    def __init__(self, model: Model, name: str = "model"):
        super().__init__()
        self.name = name
        self.model = model
        self._shapes = {t.index: t.shape for t in model.tensors}
        self._const: dict[int, np.ndarray] = {}
        for t in model.tensors:
            if t.data is not None and t.data.size:
                self._const[t.index] = self._constant(t)
        self._steps: list[Step] = []
        self._step_of: dict[int, Step] = {}  # operator index -> its step (folded operators have none)
        self._n_buffers = 0
        self._pad_alias = self._foldable_pads(model)
        reads: list[list[int]] = []
        for k, op in enumerate(model.operators):
            if all(i in self._const or i < 0 for i in op.inputs) and op.op in ("DEQUANTIZE", "DENSIFY"):
                self._fold(op)
            elif op.op == "PAD" and op.outputs[0] in self._pad_alias:
                continue  # done by the convolution that reads it
            else:
                self._steps.append(self._build(op))
                self._step_of[k] = self._steps[-1]
                reads.append([self._pad_alias.get(i, (i, None))[0] for i in op.inputs if i >= 0])
        self.input_index = model.inputs
        self.output_index = model.outputs
        # activations dropped after their last reader, so a batch holds only what is still needed
        last: dict[int, int] = {}
        for k, ids in enumerate(reads):
            for i in ids:
                if i not in self._const:
                    last[i] = k
        self._free: list[list[int]] = [[] for _ in self._steps]
        for i, k in last.items():
            if i not in model.outputs:
                self._free[k].append(i)
        self.output_names = [model.tensors[i].name for i in model.outputs]
        self.input_shape = model.tensors[model.inputs[0]].shape
        self._litert: litert.LiteRTRunner | None = None
        self._litert_lock = threading.Lock()

    def _foldable_pads(self, model: Model) -> dict[int, tuple[int, tuple[int, int]]]:
        """PADs of height and width only, evenly, read only by one VALID convolution: that convolution pads
        instead (no padded copy). Output index -> (input index, (pad h, pad w))."""
        readers: dict[int, list[Operator]] = {}
        for op in model.operators:
            for i in op.inputs:
                readers.setdefault(i, []).append(op)
        alias = {}
        for op in model.operators:
            if op.op != "PAD" or op.inputs[1] not in self._const or self.rank(op.inputs[0]) != 4:
                continue
            (n0, n1), (t, b), (lf, r), (c0, c1) = np.asarray(self._const[op.inputs[1]]).reshape(4, 2).tolist()
            users = readers.get(op.outputs[0], [])
            if (n0, n1, c0, c1) != (0, 0, 0, 0) or t != b or lf != r or len(users) != 1:
                continue
            user = users[0]
            if user.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and user.inputs[0] == op.outputs[0]:
                if int(_opt(user.options, 0, "b")) == 1 and op.outputs[0] not in model.outputs:
                    alias[op.outputs[0]] = (op.inputs[0], (int(t), int(lf)))
        return alias

    def _conv_input(self, op: Operator, pad: tuple) -> tuple[int, tuple]:
        """The tensor a convolution reads and its padding, with a folded PAD taken in."""
        src = op.inputs[0]
        if src in self._pad_alias and pad[1] is None:
            src, (ph, pw) = self._pad_alias[src]
            return src, ((pad[0][0] + ph, pad[0][1] + pw), None)
        return src, pad

    # -- constants --------------------------------------------------------------------------------
    def _constant(self, t: Tensor) -> np.ndarray:
        assert t.data is not None
        if t.sparsity is not None:
            return t.data.copy()  # folded by its DENSIFY
        return t.data.reshape(t.shape) if t.shape else t.data.reshape(())

    def _fold(self, op: Operator) -> None:
        src = self.model.tensors[op.inputs[0]]
        value = self._const[op.inputs[0]]
        if op.op == "DENSIFY" or src.sparsity is not None:
            assert src.sparsity is not None
            value = densify(value.reshape(-1), src.shape, src.sparsity)
        if op.op == "DEQUANTIZE":
            value = value.astype(np.float32)
        self._const[op.outputs[0]] = value.reshape(self._shapes[op.outputs[0]])

    def _buffer(self, value: np.ndarray | torch.Tensor) -> str:
        name = f"b{self._n_buffers}"
        self._n_buffers += 1
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        if tensor.dtype == torch.float64 or tensor.dtype == torch.float16:
            tensor = tensor.float()
        if tensor.dim() == 4:  # convolution weights: channels-last, as the activations (faster kernels)
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        self.register_buffer(name, tensor, persistent=False)
        return name

    def buf(self, name: str) -> torch.Tensor:
        """A registered constant (moved with the module)."""
        tensor = self._buffers[name]
        assert tensor is not None
        return tensor

    def _layout_const(self, index: int, rank: int) -> str:
        """A constant broadcast-ready against an activation of file rank `rank` in our layout."""
        value = np.asarray(self._const[index], dtype=np.float32)
        value = value.reshape((1,) * (rank - value.ndim) + value.shape)
        if rank == 4:
            value = value.transpose(NHWC_TO_NCHW)
        return self._buffer(value)

    def _value(self, index: int, rank: int) -> Callable[[list], torch.Tensor]:
        """A reader of operand `index`: the activation slot, or a constant buffer."""
        if index in self._const:
            name = self._layout_const(index, rank)
            return lambda env: self.buf(name)
        return lambda env: env[index]

    def _int_const(self, index: int) -> list[int]:
        return [int(v) for v in np.asarray(self._const[index]).reshape(-1)]

    # -- operators --------------------------------------------------------------------------------
    def _build(self, op: Operator) -> Step:
        builder = getattr(self, "_op_" + op.op.lower(), None)
        if builder is None:
            builder = custom_ops.BUILDERS.get(op.op)
            if builder is None:
                raise UnsupportedModel(f"{self.name}: operator {op.op} is not supported")
            return builder(self, op)
        return builder(op)

    def rank(self, index: int) -> int:
        return len(self._shapes[index])

    def shape(self, index: int) -> tuple[int, ...]:
        return self._shapes[index]

    def _op_conv_2d(self, op: Operator) -> Step:
        weight = self._const[op.inputs[1]].astype(np.float32)  # [O, kh, kw, I]
        return self._convolution(op, weight, weight.transpose(0, 3, 1, 2), act_field=3, dilation_field=4, groups=1)

    def _op_depthwise_conv_2d(self, op: Operator) -> Step:
        weight = self._const[op.inputs[1]].astype(np.float32)  # [1, kh, kw, C*m]
        channels = self.shape(op.inputs[0])[3]
        w = weight[0].transpose(2, 0, 1)[:, None]
        return self._convolution(op, weight, w, act_field=4, dilation_field=5, groups=channels)

    def _convolution(
        self,
        op: Operator,
        weight: np.ndarray,
        torch_weight: np.ndarray,
        act_field: int,
        dilation_field: int,
        groups: int,
    ) -> Step:
        """CONV_2D and DEPTHWISE_CONV_2D: the same options but for where activation and dilation sit."""
        o = op.options
        stride_w, stride_h = int(_opt(o, 1, "i", 1)), int(_opt(o, 2, "i", 1))
        dil_w, dil_h = int(_opt(o, dilation_field, "i", 1)), int(_opt(o, dilation_field + 1, "i", 1))
        act = _activation(int(_opt(o, act_field, "b")))
        w = self._buffer(torch_weight)
        b = (
            self._buffer(self._const[op.inputs[2]].astype(np.float32))
            if len(op.inputs) > 2 and op.inputs[2] >= 0
            else None
        )
        pad = self._padding(
            op, int(_opt(o, 0, "b")), weight.shape[1], weight.shape[2], stride_h, stride_w, dil_h, dil_w
        )
        (src, pad), dst = self._conv_input(op, pad), op.outputs[0]
        stride, dilation = (stride_h, stride_w), (dil_h, dil_w)

        def step(env: list) -> None:
            x = env[src]
            if pad[1] is not None:
                x = F.pad(x, pad[1])
            y = F.conv2d(x, self.buf(w), None if b is None else self.buf(b), stride, pad[0], dilation, groups)
            env[dst] = act(y) if act else y

        return step

    def _padding(self, op: Operator, mode: int, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1):
        """(symmetric padding for the op, or an explicit F.pad tuple when SAME padding is uneven)."""
        if mode == 1:  # VALID
            return (0, 0), None
        _, h, w, _ = self.shape(op.inputs[0])
        top, bottom = _same_padding(h, kh, sh, dh)
        left, right = _same_padding(w, kw, sw, dw)
        if top == bottom and left == right:
            return (top, left), None
        return (0, 0), (left, right, top, bottom)

    def _binary(self, op: Operator, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], act_field: int) -> Step:
        rank = self.rank(op.outputs[0])
        a, b = self._value(op.inputs[0], rank), self._value(op.inputs[1], rank)
        act = _activation(int(_opt(op.options, act_field, "b")))
        dst = op.outputs[0]

        def step(env: list) -> None:
            y = fn(a(env), b(env))
            env[dst] = act(y) if act else y

        return step

    def _op_add(self, op: Operator) -> Step:
        return self._binary(op, torch.add, 0)

    def _op_mul(self, op: Operator) -> Step:
        return self._binary(op, torch.mul, 0)

    def _op_sub(self, op: Operator) -> Step:
        return self._binary(op, torch.sub, 0)

    def _unary(self, op: Operator, fn: Callable[[torch.Tensor], torch.Tensor]) -> Step:
        src, dst = op.inputs[0], op.outputs[0]

        def step(env: list) -> None:
            env[dst] = fn(env[src])

        return step

    def _op_relu(self, op: Operator) -> Step:
        return self._unary(op, F.relu)

    def _op_relu6(self, op: Operator) -> Step:
        return self._unary(op, lambda x: x.clamp(0.0, 6.0))

    def _op_logistic(self, op: Operator) -> Step:
        return self._unary(op, torch.sigmoid)

    def _op_tanh(self, op: Operator) -> Step:
        return self._unary(op, torch.tanh)

    def _op_hard_swish(self, op: Operator) -> Step:
        return self._unary(op, F.hardswish)

    def _op_prelu(self, op: Operator) -> Step:
        rank = self.rank(op.outputs[0])
        src, dst = op.inputs[0], op.outputs[0]
        if rank == 4 and op.inputs[1] in self._const:
            a = np.asarray(self._const[op.inputs[1]], dtype=np.float32)
            channels = self.shape(src)[3]
            if a.size == channels and a.shape[-1] == channels:  # one slope per channel: torch's own kernel
                slope = self._buffer(a.reshape(channels))

                def per_channel(env: list) -> None:
                    env[dst] = F.prelu(env[src], self.buf(slope))

                return per_channel
        alpha = self._value(op.inputs[1], rank)

        def step(env: list) -> None:
            x = env[src]
            env[dst] = torch.where(x >= 0, x, x * alpha(env))

        return step

    def _op_pad(self, op: Operator) -> Step:
        pads = np.asarray(self._const[op.inputs[1]]).reshape(-1, 2).tolist()
        if len(pads) == 4:
            pads = [pads[i] for i in NHWC_TO_NCHW]
        flat: list[int] = []
        for before, after in reversed(pads):
            flat += [int(before), int(after)]
        src, dst = op.inputs[0], op.outputs[0]

        def step(env: list) -> None:
            env[dst] = F.pad(env[src], flat)

        return step

    def _pool(self, op: Operator, kind: str) -> Step:
        o = op.options
        sw, sh, fw, fh = (int(_opt(o, i, "i", 1)) for i in (1, 2, 3, 4))
        act = _activation(int(_opt(o, 5, "b")))
        _, h, w, _ = self.shape(op.inputs[0])
        pad = (0, 0, 0, 0)
        if int(_opt(o, 0, "b")) == 0:  # SAME
            top, bottom = _same_padding(h, fh, sh, 1)
            left, right = _same_padding(w, fw, sw, 1)
            pad = (left, right, top, bottom)
        src, dst = op.inputs[0], op.outputs[0]
        divisor = None
        if kind == "avg" and any(pad):
            ones = F.pad(torch.ones(1, 1, h, w), pad)
            divisor = self._buffer(F.avg_pool2d(ones, (fh, fw), (sh, sw)) * (fh * fw))

        def step(env: list) -> None:
            x = env[src]
            if kind == "max":
                if any(pad):
                    x = F.pad(x, pad, value=float("-inf"))
                y = F.max_pool2d(x, (fh, fw), (sh, sw))
            elif divisor is None:
                y = F.avg_pool2d(x, (fh, fw), (sh, sw))
            else:
                y = F.avg_pool2d(F.pad(x, pad), (fh, fw), (sh, sw), divisor_override=1) / self.buf(divisor)
            env[dst] = act(y) if act else y

        return step

    def _op_max_pool_2d(self, op: Operator) -> Step:
        return self._pool(op, "max")

    def _op_average_pool_2d(self, op: Operator) -> Step:
        return self._pool(op, "avg")

    def to_file_layout(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return x.permute(NCHW_TO_NHWC) if self.rank(index) == 4 else x

    def from_file_layout(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return x.permute(NHWC_TO_NCHW) if self.rank(index) == 4 else x

    def _op_reshape(self, op: Operator) -> Step:
        src, dst = op.inputs[0], op.outputs[0]
        tail = self.shape(dst)[1:]
        same = self.shape(src)[1:] == tail

        def step(env: list) -> None:
            x = env[src]
            if not same:
                x = self.to_file_layout(x, src).reshape((x.shape[0], *tail))
                x = self.from_file_layout(x, dst)
            env[dst] = x

        return step

    def _op_concatenation(self, op: Operator) -> Step:
        rank = self.rank(op.outputs[0])
        axis = int(_opt(op.options, 0, "i"))
        axis = axis % rank
        if rank == 4:
            axis = AXIS_NHWC_TO_NCHW[axis]
        act = _activation(int(_opt(op.options, 1, "b")))
        parts = [self._value(i, rank) for i in op.inputs]
        dst = op.outputs[0]

        def step(env: list) -> None:
            y = torch.cat([p(env) for p in parts], dim=axis)
            env[dst] = act(y) if act else y

        return step

    def _op_strided_slice(self, op: Operator) -> Step:
        begin, end, strides = (self._int_const(i) for i in op.inputs[1:4])
        o = op.options
        begin_mask, end_mask = int(_opt(o, 0, "i")), int(_opt(o, 1, "i"))
        if any(int(_opt(o, f, "i")) for f in (2, 3, 4)):
            raise UnsupportedModel("STRIDED_SLICE with ellipsis/new-axis/shrink masks")
        slices = []
        for d, (b0, e0, s0) in enumerate(zip(begin, end, strides, strict=True)):
            if d == 0:  # the batch: the file's graph is built for one image, every image keeps its own
                slices.append(slice(None))
                continue
            slices.append(slice(None if begin_mask >> d & 1 else b0, None if end_mask >> d & 1 else e0, s0))
        src, dst = op.inputs[0], op.outputs[0]
        index = tuple(slices)

        def step(env: list) -> None:
            x = self.to_file_layout(env[src], src)[index]
            env[dst] = self.from_file_layout(x, dst).contiguous()

        return step

    def _op_mean(self, op: Operator) -> Step:
        rank = self.rank(op.inputs[0])
        axes = [a % rank for a in self._int_const(op.inputs[1])]
        if rank == 4:
            axes = [AXIS_NHWC_TO_NCHW[a] for a in axes]
        keep = bool(_opt(op.options, 0, "b"))
        src, dst = op.inputs[0], op.outputs[0]

        def step(env: list) -> None:
            env[dst] = env[src].mean(dim=axes, keepdim=keep)

        return step

    def _op_fully_connected(self, op: Operator) -> Step:
        act = _activation(int(_opt(op.options, 0, "b")))
        w = self._buffer(self._const[op.inputs[1]].astype(np.float32))
        b = (
            self._buffer(self._const[op.inputs[2]].astype(np.float32))
            if len(op.inputs) > 2 and op.inputs[2] >= 0
            else None
        )
        src, dst = op.inputs[0], op.outputs[0]
        k = self._const[op.inputs[1]].shape[1]

        def step(env: list) -> None:
            x = self.to_file_layout(env[src], src).reshape(-1, k)
            y = F.linear(x, self.buf(w), None if b is None else self.buf(b))
            env[dst] = act(y) if act else y

        return step

    def _op_resize_bilinear(self, op: Operator) -> Step:
        size = tuple(self._int_const(op.inputs[1]))
        align = bool(_opt(op.options, 2, "b"))
        half = bool(_opt(op.options, 3, "b"))
        if not align and not half:
            raise UnsupportedModel("RESIZE_BILINEAR without half-pixel centres or aligned corners")
        src, dst = op.inputs[0], op.outputs[0]

        def step(env: list) -> None:
            env[dst] = F.interpolate(env[src], size=size, mode="bilinear", align_corners=align)

        return step

    def _op_depth_to_space(self, op: Operator) -> Step:
        bs = int(_opt(op.options, 0, "i"))
        src, dst = op.inputs[0], op.outputs[0]

        def step(env: list) -> None:
            x = env[src]
            n, c, h, w = x.shape
            x = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
            env[dst] = x.reshape(n, c // (bs * bs), h * bs, w * bs)

        return step

    def _op_dequantize(self, op: Operator) -> Step:
        return self._unary(op, lambda x: x.float())

    def step_of(self, index: int) -> Step:
        """The step that runs operator `index` (a PAD folded into its convolution does nothing)."""
        return self._step_of.get(index, _nothing)

    def fast(self, image: torch.Tensor) -> list[torch.Tensor]:
        """`forward`, or on the CPU through LiteRT when it is installed (litert.runtime() says which)."""
        if image.device.type != "cpu" or litert.runtime() == "torch":
            return self.forward(image)
        runner = self._litert
        if runner is None:
            with self._litert_lock:
                runner = self._litert
                if runner is None:
                    runner = self._litert = litert.LiteRTRunner(self, self.model.data)
        return runner.run(image)

    # -- running ----------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """`image`: [B, C, H, W] float, already scaled to the model's input range."""
        env: list[torch.Tensor | None] = [None] * len(self.model.tensors)
        env[self.input_index[0]] = image.contiguous(memory_format=torch.channels_last)
        for step, free in zip(self._steps, self._free, strict=True):
            step(env)
            for i in free:
                env[i] = None
        return self.outputs_of(env)

    def outputs_of(self, env: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """The graph's outputs from a finished run's activations, in the file's layout."""
        outs = []
        for i in self.output_index:
            y = env[i]
            assert y is not None
            outs.append(self.to_file_layout(y, i))
        return outs


def _nothing(env: list) -> None:
    return None


def load(path: str | Path) -> TFLiteModule:
    path = Path(path)
    module = TFLiteModule(read_model(path.read_bytes()), name=path.name)
    module.eval()
    return module
