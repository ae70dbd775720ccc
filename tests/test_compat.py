"""Import paths from before 0.3 (one flat folder of modules) keep working after the move into
stage folders (tdmixup._compat and the packages' ``__getattr__``)."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
import warnings

import pytest

import tdmixup
from tdmixup._compat import MOVED

# The old modules that are now packages, and the module whose names each package gives.
BECAME_PACKAGES = {
    "tdmixup.model": "tdmixup.model.classifier",
    "tdmixup.dynamics": "tdmixup.dynamics.table",
    "tdmixup.evaluation": "tdmixup.evaluation.sets",
    "tdmixup.training": "tdmixup.training.loop",
    "tdmixup.cli": "tdmixup.cli.commands",
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_new_module_with_a_warning(old: str) -> None:
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new  # one object: patches, isinstance and module globals agree
    assert new.__name__ == MOVED[old] and new.__spec__.name == MOVED[old]  # left untouched


@pytest.mark.parametrize("package", sorted(BECAME_PACKAGES))
def test_a_module_that_became_a_package_gives_its_former_names(package: str) -> None:
    main = importlib.import_module(BECAME_PACKAGES[package])
    pkg = importlib.import_module(package)
    names = [n for n, v in vars(main).items() if not n.startswith("_") and callable(v)]
    assert len(names) > 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the package path is a current one: no warning
        for name in names:
            assert getattr(pkg, name) is getattr(main, name), name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pkg.not_a_name  # noqa: B018


def test_old_style_imports_in_a_fresh_interpreter() -> None:
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "from tdmixup.training import train\n"
        "from tdmixup.model import build_classifier\n"
        "from tdmixup.dynamics import compute_statistics\n"
        "from tdmixup.evaluation import evaluate_sets\n"
        "from tdmixup.cli import main\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "from tdmixup.aum import find_mislabeled_with_aum\n"
        "from tdmixup.session import open_session\n"
        "import tdmixup.config as C\n"
        "import tdmixup.core.config\n"
        "assert C is tdmixup.core.config\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_pickle_that_names_an_old_module_loads() -> None:
    """Files written before 0.3 (e.g. a pickled config) name classes by their old module."""
    from tdmixup.core.config import RunConfig

    payload = pickle.dumps(RunConfig(), protocol=0)
    old = payload.replace(b"tdmixup.core.config", b"tdmixup.config")
    assert old != payload
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert pickle.loads(old) == RunConfig()


def test_the_public_api_names_current_paths() -> None:
    for name, module in tdmixup._EXPORTS.items():
        assert module not in MOVED, f"{name}: {module} is an old path"
        getattr(tdmixup, name)
