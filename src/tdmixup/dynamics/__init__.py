"""Training dynamics and what is selected from them: the Parquet table
(:mod:`~tdmixup.dynamics.table`), per-sample statistics, data maps and regions, AUM and threshold
samples, label-noise injection, the fingerprint of the data a table was recorded on, and ranked
suspects.

The names of :mod:`tdmixup.dynamics.table` (this package's former single module,
``tdmixup.dynamics``) are also read from here, lazily, so ``from tdmixup.dynamics import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tdmixup.dynamics.table"), name)
    except AttributeError:
        raise AttributeError(f"module 'tdmixup.dynamics' has no attribute {name!r}") from None
