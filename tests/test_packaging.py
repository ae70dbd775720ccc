"""Packaging: the wheel builds offline, carries LICENSE, ``py.typed`` and the ``tdmixup`` entry
point, and installs into a fresh venv where ``tdmixup --version`` prints the one version.

The wheel is built from a copy of ``pyproject.toml``, ``README.md``, ``LICENSE`` and ``src/`` (the
worktree gets no ``build/`` or ``egg-info``) with the running venv's setuptools
(``--no-build-isolation``, ``--no-index``: no network). The fresh venv has no pip and none of
tdmixup's dependencies (``--no-deps``): ``--version`` and ``--help`` must need none of them.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tdmixup

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so the fresh venv imports only the installed wheel."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"),
        *("-w", dist, src),
    )
    (built,) = dist.glob("tdmixup-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_license_py_typed_entry_point_and_metadata(wheel: Path) -> None:
    version = tdmixup.__version__
    assert wheel.name == f"tdmixup-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"tdmixup-{version}.dist-info"
        assert "tdmixup/py.typed" in names
        assert "tdmixup/data/schema.py" in names  # the sub-package too
        assert zf.read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
        meta = email.message_from_bytes(zf.read(f"{info}/METADATA"))
    console = r"^\[console_scripts\]\ntdmixup = tdmixup\.cli\.commands:main$"
    assert re.search(console, entry_points, re.M)
    assert meta["Version"] == version
    assert meta["License-Expression"] == "Apache-2.0"
    requires = [r.split(";")[0] for r in meta.get_all("Requires-Dist")]
    assert not any(r.lower().startswith("typer") for r in requires)
    assert any(r.lower().startswith("pyyaml") for r in requires)
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(u.startswith("Paper, https://") for u in meta.get_all("Project-URL"))


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_prints_its_version(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    _run(
        sys.executable,
        *("-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index"),
        *("--no-cache-dir", wheel),
    )
    env = _clean_env()
    assert (
        _run(venv / "bin" / "tdmixup", "--version", env=env) == f"tdmixup {tdmixup.__version__}\n"
    )
    where, installed, own = _run(
        py,
        "-c",
        "import importlib.metadata as m, tdmixup; "
        "print(tdmixup.__file__); print(m.version('tdmixup')); print(tdmixup.__version__)",
        env=env,
    ).split()
    assert Path(where).is_relative_to(venv)  # the wheel's copy, not this checkout's
    assert installed == own == tdmixup.__version__
    assert "tdmixup run" in _run(venv / "bin" / "tdmixup", "run", "--help", env=env)


def test_version_is_written_once() -> None:
    """pyproject.toml reads the version from ``tdmixup.__version__``; CITATION.cff and the
    CHANGELOG's newest entry name the same one."""
    import yaml

    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "tdmixup.__version__" }' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)  # no second, static one
    version = tdmixup.__version__
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["version"] == version
    assert cff["preferred-citation"]["doi"] == "10.18653/v1/2022.naacl-main.314"
    released = re.findall(r"^## (\d+\.\d+\.\d+) \((\d{4}-\d\d-\d\d)\)$", _changelog(), re.M)
    assert released[0] == (version, str(cff["date-released"]))


def _changelog() -> str:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.split("\n## ")[1].startswith("Unreleased")  # others' lines go here first
    return text


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``tdmixup --version``, as the install guide (docs/guides/install.md) names it."""
    from tdmixup.cli.commands import main

    install = (REPO / "docs" / "guides" / "install.md").read_text()
    assert "`tdmixup --version` prints the version" in install and "`CITATION.cff`" in install

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"tdmixup {tdmixup.__version__}\n"
