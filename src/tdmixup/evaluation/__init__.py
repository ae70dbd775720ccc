"""Evaluation: calibration metrics (:mod:`~tdmixup.evaluation.calibration`), a model on every named
set (:mod:`~tdmixup.evaluation.sets`), ``report.md`` and the paper's tables.

The names of :mod:`tdmixup.evaluation.sets` (this package's former single module,
``tdmixup.evaluation``) are also read from here, lazily, so ``from tdmixup.evaluation import …``
written before 0.3 keeps working and importing a submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tdmixup.evaluation.sets"), name)
    except AttributeError:
        raise AttributeError(f"module 'tdmixup.evaluation' has no attribute {name!r}") from None
