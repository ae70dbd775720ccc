"""Evaluation: calibration metrics (:mod:`~tdmixup.evaluation.calibration`), a model on every named
set (:mod:`~tdmixup.evaluation.sets`), ``report.md`` and the paper's tables.

The names of :mod:`tdmixup.evaluation.sets` (this package's former single module,
``tdmixup.evaluation``) are also read from here, lazily, so ``from tdmixup.evaluation import …``
written before 0.3 keeps working and importing a submodule does not load the others.
"""

from typing import Any

from tdmixup._compat import former_module_names

_former_names = former_module_names("tdmixup.evaluation", "tdmixup.evaluation.sets")


def __getattr__(name: str) -> Any:  # a def: type checkers read a module's __getattr__ only so
    return _former_names(name)
