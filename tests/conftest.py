"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `_tiny`


@pytest.fixture
def shared_data() -> Path:
    """The real data folder ``<repo>/../shared/data``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            "real-data variant: needs the original ChaosNLI, Twitter URL Corpus, HellaSWAG and "
            "Desai & Durrett files in ../shared/data/ "
            "(where to get each: tests/fixtures/README.md); "
            "the readers are also tested on the small files in tests/fixtures"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def snli_train() -> Path:
    """The first 100k SNLI train rows, found as the library finds them (``$TDMIXUP_DATA_DIR``,
    ``../shared/data``, the cache, else downloaded once from PyPI and sha256-checked)."""
    from _tiny import snli_train_file

    return snli_train_file()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module's tests.

    Use: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``. On a busy 2-core machine two
    threads spin and cost many times the CPU time.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
