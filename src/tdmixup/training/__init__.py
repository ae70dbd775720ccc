"""The training loop on Accelerate (:mod:`~tdmixup.training.loop`: :func:`train`), its epoch plan,
optimiser, epoch totals, checkpoints, experiment trackers and the HF ``Trainer`` callback.

The names of :mod:`tdmixup.training.loop` (this package's former single module,
``tdmixup.training``) are also read from here, lazily, so ``from tdmixup.training import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tdmixup.training.loop"), name)
    except AttributeError:
        raise AttributeError(f"module 'tdmixup.training' has no attribute {name!r}") from None
