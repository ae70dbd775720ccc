"""The ``tdmixup`` command line: commands (:mod:`~tdmixup.cli.commands`), options generated from
the configs, ``--config`` files and the checks before anything is written.

The names of :mod:`tdmixup.cli.commands` (this package's former single module, ``tdmixup.cli``) are
also read from here, lazily, so ``from tdmixup.cli import …`` written before 0.3 keeps
working and importing a submodule does not load the others.
"""

from typing import Any

from tdmixup._compat import former_module_names

_former_names = former_module_names("tdmixup.cli", "tdmixup.cli.commands")


def __getattr__(name: str) -> Any:  # a def: type checkers read a module's __getattr__ only so
    return _former_names(name)
