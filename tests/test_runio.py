"""Atomic writes (:func:`tdmixup.core.runio.atomic_output`), used by every file a run writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdmixup.core.runio import atomic_output, atomic_write_text, read_json, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "table.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.txt"]


def test_a_finished_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "result.json"  # the folder is created
    write_json(path, {"a": 1})
    with atomic_output(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text('{"a": 2}')
        assert read_json(path) == {"a": 1}  # readers see the old file until the block ends
    assert read_json(path) == {"a": 2}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
