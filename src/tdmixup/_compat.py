"""Import paths from before 0.3, when tdmixup was one flat folder of modules.

0.3 moved the modules into one sub-package per stage (``tdmixup.aum`` →
``tdmixup.dynamics.aum``, …; the table is :data:`MOVED`). The old dotted paths still import:
a finder on ``sys.meta_path`` answers each with the module at its new place, the same object
(so ``tdmixup.aum is tdmixup.dynamics.aum``, patches and ``isinstance`` agree, and pickles and
checkpoints that name an old path still load), with one ``DeprecationWarning`` per path. The
old paths that are now packages (``tdmixup.model``, ``tdmixup.dynamics``, ``tdmixup.evaluation``,
``tdmixup.training``, ``tdmixup.cli``) give their former module's names from the package itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

MOVED: dict[str, str] = {
    "tdmixup.config": "tdmixup.core.config",
    "tdmixup.layout": "tdmixup.core.layout",
    "tdmixup.runio": "tdmixup.core.runio",
    "tdmixup.arrays": "tdmixup.core.arrays",
    "tdmixup.classmix": "tdmixup.core.classmix",
    "tdmixup.samples": "tdmixup.core.samples",
    "tdmixup.predict": "tdmixup.model.predict",
    "tdmixup.sample_statistics": "tdmixup.dynamics.statistics",
    "tdmixup.datamap": "tdmixup.dynamics.datamap",
    "tdmixup.datamap_plots": "tdmixup.dynamics.datamap_plots",
    "tdmixup.aum": "tdmixup.dynamics.aum",
    "tdmixup.aum_arrays": "tdmixup.dynamics.aum_arrays",
    "tdmixup.noise": "tdmixup.dynamics.noise",
    "tdmixup.fingerprint": "tdmixup.dynamics.fingerprint",
    "tdmixup.suspects": "tdmixup.dynamics.suspects",
    "tdmixup.mixing": "tdmixup.strategies.mixing",
    "tdmixup.mixup": "tdmixup.strategies.step",
    "tdmixup.kong": "tdmixup.strategies.kong",
    "tdmixup.aum_saliency": "tdmixup.strategies.aum_saliency",
    "tdmixup.backtranslation": "tdmixup.strategies.backtranslation",
    "tdmixup.calibration": "tdmixup.evaluation.calibration",
    "tdmixup.report": "tdmixup.evaluation.report",
    "tdmixup.tables": "tdmixup.evaluation.tables",
    "tdmixup.planning": "tdmixup.training.planning",
    "tdmixup.optim": "tdmixup.training.optim",
    "tdmixup.epoch_totals": "tdmixup.training.epoch_totals",
    "tdmixup.checkpoint": "tdmixup.training.checkpoint",
    "tdmixup.hf_trainer": "tdmixup.training.hf_trainer",
    "tdmixup.tracking": "tdmixup.training.tracking",
    "tdmixup.session": "tdmixup.run.session",
    "tdmixup.aum_training": "tdmixup.run.aum_training",
    "tdmixup.pipeline": "tdmixup.run.pipeline",
    "tdmixup.experiments": "tdmixup.run.experiments",
    "tdmixup.fitting": "tdmixup.run.fitting",
    "tdmixup.label_issues": "tdmixup.run.label_issues",
    "tdmixup.cli_options": "tdmixup.cli.options",
    "tdmixup.cli_config": "tdmixup.cli.config_file",
    "tdmixup.preflight": "tdmixup.cli.preflight",
    "tdmixup.inference.commands": "tdmixup.cli.inference_commands",
}
"""Old module path → its module since 0.3. (``tdmixup.model``, ``.dynamics``, ``.evaluation``,
``.training`` and ``.cli`` became packages named after them; see their ``__init__``.)"""


class _MovedModuleLoader(importlib.abc.Loader):
    """Puts the module at its new path in ``sys.modules`` under the old name.

    The import system re-reads ``sys.modules`` after :meth:`exec_module`, so the importer gets
    the real module (not the empty placeholder made from the spec), and the real module's own
    ``__spec__`` and ``__name__`` stay untouched.
    """

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default (empty) module: a placeholder that :meth:`exec_module` replaces."""
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        """Warn once, then answer the old name with the module at its new path."""
        warnings.warn(
            f"{module.__name__} moved to {self.new_name} in tdmixup 0.3; import it from there "
            "(the old path will be removed in a later release)",
            DeprecationWarning,
            stacklevel=2,
        )
        sys.modules[module.__name__] = importlib.import_module(self.new_name)


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Answers the import of an old module path (:data:`MOVED`) with the module at its new one."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new_name))


def former_module_names(package: str, module: str) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that gives the names of ``module`` (the package's former single
    module), imported on first use so that importing a submodule does not load the others."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(importlib.import_module(module), name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``import tdmixup`` calls this)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
