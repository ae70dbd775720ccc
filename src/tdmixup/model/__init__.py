"""The classifier: encoder + [CLS] head (:mod:`~tdmixup.model.classifier`: build, save, load)
and its logits over a set, by ``sample_id`` (:mod:`~tdmixup.model.predict`).

The names of :mod:`tdmixup.model.classifier` (this package's former single module,
``tdmixup.model``) are also read from here, lazily, so ``from tdmixup.model import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from typing import Any

from tdmixup._compat import former_module_names

_former_names = former_module_names("tdmixup.model", "tdmixup.model.classifier")


def __getattr__(name: str) -> Any:  # a def: type checkers read a module's __getattr__ only so
    return _former_names(name)
