"""Count host-device synchronisations on a CPU-only machine.

``torch.cuda.set_sync_debug_mode`` needs CUDA. Here a :class:`TorchDispatchMode` follows which
tensors would live on the accelerator: the ones :func:`mark_device` is given (model parameters,
a collated batch after ``to_device``) and every op result computed from one. A *sync* is an op
that makes the host wait for such a tensor's value:

* ``aten::_local_scalar_dense`` (``.item()``, ``float()``, ``bool()``, ``int()``),
* ops whose output size depends on the values (``nonzero``, ``masked_select``, boolean-mask
  indexing, ``unique``),
* ``Tensor.cpu()`` / ``.numpy()`` / ``.tolist()`` of a device tensor (patched in Python, since
  on a CPU tensor they never reach the dispatcher).

Values drawn from the loop's CPU generator (λ, seeds) are host values and never count.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

_SIZE_FROM_VALUES = {
    "aten::_local_scalar_dense",
    "aten::nonzero",
    "aten::masked_select",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
}


def _caller() -> str:
    """Where the sync was asked for: the innermost frame outside torch and this module, as
    ``file.py:line function``, prefixed with ``tdmixup/`` when it is tdmixup's own code (else
    the library's, e.g. ``transformers/``)."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or path.endswith("_sync_count.py"):
            continue
        package = "tdmixup" if "/tdmixup/" in path else path.rsplit("/", 2)[-2]
        return f"{package}/{path.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
    return "unknown"


class SyncCounter(TorchDispatchMode):
    """Records ``(what, where)`` for every sync on a device tensor while active.

    :attr:`ours` are the syncs asked for by tdmixup's own code."""

    def __init__(self) -> None:
        super().__init__()
        self.device = WeakTensorKeyDictionary()
        self.syncs: list[tuple[str, str]] = []

    @property
    def ours(self) -> list[tuple[str, str]]:
        return [s for s in self.syncs if s[1].startswith("tdmixup/")]

    def mark_device(self, *tensors: Any) -> None:
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self.device[t] = True

    def is_device(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t in self.device

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = any(self.is_device(t) for t in inputs)
        name = func._schema.name
        bool_index = name in ("aten::index", "aten::index_put", "aten::index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if len(args) > 1 and isinstance(args[1], list | tuple) else [])
        )
        if on_device and (name in _SIZE_FROM_VALUES or bool_index):
            self.syncs.append((name, _caller()))
        out = func(*args, **kwargs)
        if on_device:
            self.mark_device(out)
        return out


@contextmanager
def count_syncs() -> Iterator[SyncCounter]:
    """Active :class:`SyncCounter`, with ``.cpu()``, ``.numpy()`` and ``.tolist()`` of device
    tensors counted too."""
    counter = SyncCounter()
    patched = {name: getattr(torch.Tensor, name) for name in ("cpu", "numpy", "tolist")}

    def wrap(name: str, real: Any) -> Any:
        def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if counter.is_device(self):
                counter.syncs.append((f"Tensor.{name}", _caller()))
            return real(self, *args, **kwargs)

        return method

    for name, real in patched.items():
        setattr(torch.Tensor, name, wrap(name, real))
    try:
        with counter:
            yield counter
    finally:
        for name, real in patched.items():
            setattr(torch.Tensor, name, real)
