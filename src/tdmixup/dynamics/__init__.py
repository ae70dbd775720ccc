"""Training dynamics and what is selected from them: the Parquet table
(:mod:`~tdmixup.dynamics.table`), per-sample statistics, data maps and regions, AUM and threshold
samples, label-noise injection, the fingerprint of the data a table was recorded on, and ranked
suspects.

The names of :mod:`tdmixup.dynamics.table` (this package's former single module,
``tdmixup.dynamics``) are also read from here, lazily, so ``from tdmixup.dynamics import …`` written
before 0.3 keeps working and importing a submodule does not load the others.
"""

from typing import Any

from tdmixup._compat import former_module_names

_former_names = former_module_names("tdmixup.dynamics", "tdmixup.dynamics.table")


def __getattr__(name: str) -> Any:  # a def: type checkers read a module's __getattr__ only so
    return _former_names(name)
