"""The project's own style rules hold: ``ruff check`` (E501 at 100 characters included),
``ruff format --check`` and ``mypy src``, with the versions pinned in ``pyproject.toml``'s
``dev`` extra. Run as tests so that CI (``make test``) enforces them, not only ``make lint``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["src", "tests", "benchmarks"]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: `pip install -e .[dev]` (make venv) installs it")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check() -> None:
    out = _run(_tool("ruff"), "check", *TARGETS)
    assert out.returncode == 0, (
        f"ruff check found problems (fix, or `ruff check --fix`):\n{out.stdout[-4000:]}"
    )


def test_ruff_format() -> None:
    out = _run(_tool("ruff"), "format", "--check", *TARGETS)
    assert out.returncode == 0, f"files need `ruff format`:\n{out.stdout[-4000:]}"


def test_mypy() -> None:
    out = _run(_tool("mypy"), "src")
    assert out.returncode == 0, f"mypy src:\n{out.stdout[-4000:]}"
