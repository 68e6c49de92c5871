"""Opt-in int8 inference on the CPU (`ColBERT.from_pretrained(..., quantize="int8")`).

Every `nn.Linear` of the backbone's layers gets torchao's int8 weight (symmetric, one
scale per output channel) and quantizes its input on the fly (asymmetric, one scale and
zero point per token), so its matrix product runs in int8 (AVX512-VNNI or AMX on x86;
on CPUs without VNNI the ranges are halved, as torchao advises, to avoid overflow).
The layers run through `torch.compile`, which fuses torchao's quantize and rescale steps
around the int8 product; run eagerly, those steps cost as much as the float32 product
saves. The first texts after loading therefore wait for the compilation (tens of
seconds; later shapes take a few seconds each), and the CPU needs a C++ compiler.
Embeddings, layer norms, attention and its softmax, and the final projection stay
float32, and vectors are L2-normalised as before. Needs `maxsim[int8]` (torchao).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

QUANTIZATIONS = ("int8",)
SKIPPED_MODULES = frozenset({"pooler"})
TORCHAO_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")

LinearFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def check_quantization(
    quantize: str | None, device: torch.device, dtype: torch.dtype
) -> str | None:
    """`quantize` when the model can run it on `device` in `dtype`, else an error.

    Raises:
        ValueError: an unknown value, a device other than the CPU, or a 16-bit dtype.
        ImportError: torchao is not installed (`pip install 'maxsim[int8]'`).

    Example:
        >>> check_quantization("int8", torch.device("cpu"), torch.float32)
        'int8'
        >>> check_quantization("int4", torch.device("cpu"), torch.float32)
        Traceback (most recent call last):
        ...
        ValueError: quantize must be 'int8' or None (no quantization), got 'int4'
    """
    if quantize is None:
        return None
    if not isinstance(quantize, str) or quantize not in QUANTIZATIONS:
        raise ValueError(
            f"quantize must be {' or '.join(map(repr, QUANTIZATIONS))} or None "
            f"(no quantization), got {quantize!r}"
        )
    if device.type != "cpu":
        raise ValueError(
            f"quantize={quantize!r} runs on the CPU only, got device={str(device)!r}; pass "
            "device='cpu', or drop quantize and use dtype=torch.bfloat16 on a GPU"
        )
    if dtype != torch.float32:
        raise ValueError(
            f"quantize={quantize!r} keeps the layers it does not quantize in float32 and "
            f"cannot be combined with dtype={dtype}; leave dtype unset (or pass "
            "dtype=torch.float32), or drop quantize"
        )
    if importlib.util.find_spec("torchao") is None:
        raise ImportError(f"quantize={quantize!r} needs torchao: pip install 'maxsim[int8]'")
    return quantize


class Int8Linear(nn.Module):
    """A linear layer with torchao int8 weights, run through a compiled `F.linear`."""

    def __init__(self, layer: nn.Linear, linear: LinearFunction) -> None:
        super().__init__()
        self.in_features = layer.in_features
        self.out_features = layer.out_features
        self.weight = layer.weight
        self.bias = layer.bias
        self._linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        return self._linear(rows, self.weight, self.bias).reshape(*x.shape[:-1], -1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linear_layers(module: nn.Module) -> int:
    """Swap every `nn.Linear` inside `module` (poolers aside) for an `Int8Linear`.

    Works in place and returns how many layers were swapped.

    Example:
        >>> layers = nn.Sequential(nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 8))
        >>> quantize_linear_layers(layers)
        2
        >>> layers[0]
        Int8Linear(in_features=64, out_features=32, int8)
    """
    quantize_, config = _torchao_int8()
    targets = [
        (parent, name, child)
        for parent_name, parent in module.named_modules()
        if SKIPPED_MODULES.isdisjoint(parent_name.split("."))
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear)
    ]
    for parent, name, child in targets:
        quantize_(child, config)
        linear = _compiled_linear(child.in_features, child.out_features)
        setattr(parent, name, Int8Linear(child, linear))
    return len(targets)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, weight, bias)


@functools.cache
def _compiled_linear(in_features: int, out_features: int) -> LinearFunction:
    """`F.linear` compiled for any number of rows, one per layer shape.

    Each gets a code object of its own, since Dynamo keeps its graphs (and its limit of 8
    recompilations) per code object: layers of one shape share a graph, in every model.
    """
    name = f"int8_linear_{in_features}x{out_features}"
    code = _linear.__code__.replace(co_name=name)
    own = types.FunctionType(code, _linear.__globals__, name)
    return torch.compile(own, dynamic=True, options={"fx_graph_cache": False})


def _torchao_int8() -> tuple[Any, Any]:
    """torchao's `quantize_` and its int8-weight, dynamic int8-activation config."""
    with _quiet_loggers(TORCHAO_IMPORT_LOGGERS):
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            MappingType,
            quantize_,
        )
        from torchao.utils import should_reduce_range
    config = Int8DynamicActivationInt8WeightConfig(
        act_mapping_type=MappingType.ASYMMETRIC,
        set_inductor_config=False,
        reduce_range=should_reduce_range(torch.device("cpu")),
    )
    return quantize_, config


@contextmanager
def _quiet_loggers(names: tuple[str, ...]) -> Iterator[None]:
    """Hold these loggers at ERROR (torchao's import reports the CUDA kernels it skips)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
