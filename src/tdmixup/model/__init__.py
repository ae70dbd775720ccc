"""The classifier: encoder + [CLS] head (:mod:`~tdmixup.model.classifier`: build, save, load)
and its logits over a set, by ``sample_id`` (:mod:`~tdmixup.model.predict`).

The names of :mod:`tdmixup.model.classifier` (this package's former single module,
``tdmixup.model``) are also read from here, lazily, so ``from tdmixup.model import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tdmixup.model.classifier"), name)
    except AttributeError:
        raise AttributeError(f"module 'tdmixup.model' has no attribute {name!r}") from None
