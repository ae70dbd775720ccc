"""The ``tdmixup`` command line: commands (:mod:`~tdmixup.cli.commands`), options generated from
the configs, ``--config`` files and the checks before anything is written.

The names of :mod:`tdmixup.cli.commands` (this package's former single module, ``tdmixup.cli``) are
also read from here, lazily, so ``from tdmixup.cli import …`` written before 0.3 keeps
working and importing a submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tdmixup.cli.commands"), name)
    except AttributeError:
        raise AttributeError(f"module 'tdmixup.cli' has no attribute {name!r}") from None
