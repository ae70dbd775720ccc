"""The training loop on Accelerate (:mod:`~tdmixup.training.loop`: :func:`train`), its epoch plan,
optimiser, epoch totals, checkpoints, experiment trackers and the HF ``Trainer`` callback.

The names of :mod:`tdmixup.training.loop` (this package's former single module,
``tdmixup.training``) are also read from here, lazily, so ``from tdmixup.training import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from typing import Any

from tdmixup._compat import former_module_names

_former_names = former_module_names("tdmixup.training", "tdmixup.training.loop")


def __getattr__(name: str) -> Any:  # a def: type checkers read a module's __getattr__ only so
    return _former_names(name)
