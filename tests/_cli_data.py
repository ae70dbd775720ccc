"""Tiny own-data files for command-line tests: NLI-style pairs in JSON lines, no ../shared needed.

Test modules import this file with ``from _cli_data import ...`` after putting ``tests/`` on
``sys.path`` (as with ``_tiny``). Importing it has no side effects.
"""

from __future__ import annotations

import json
from pathlib import Path

LABELS = ("entailment", "neutral", "contradiction")
_SUBJECTS = ("A dog", "A cat", "A man", "A woman", "A child", "Two birds")
_VERBS = ("runs", "sleeps", "eats", "sings", "jumps", "reads")
_PLACES = ("in the park", "at home", "on the beach", "in a car")


def pair_rows(n: int, *, offset: int = 0) -> list[dict[str, str]]:
    """``n`` deterministic rows ``{"premise", "hypothesis", "label"}``.

    Labels cycle through :data:`LABELS`.
    """
    rows = []
    for i in range(offset, offset + n):
        s, v, p = _SUBJECTS[i % 6], _VERBS[(i // 6) % 6], _PLACES[(i // 36) % 4]
        hypothesis = (f"{s} {v}.", f"{s} {v} happily.", f"{s} does not {v[:-1]}.")[i % 3]
        rows.append({"premise": f"{s} {v} {p}.", "hypothesis": hypothesis, "label": LABELS[i % 3]})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_pair_files(folder: Path, *, train: int = 40, test: int = 9) -> tuple[Path, Path]:
    """``train.jsonl`` and ``test.jsonl`` in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_jsonl(folder / "train.jsonl", pair_rows(train)),
        write_jsonl(folder / "test.jsonl", pair_rows(test, offset=train)),
    )


def data_args(train: Path, test: Path | None, *, dev_size: int | None = 8) -> list[str]:
    """CLI options reading ``train``/``test`` as a custom task with named labels (``test`` and
    ``dev_size`` left out when None)."""
    args = [
        "--task",
        "custom",
        "--train-file",
        str(train),
        "--column",
        "text_a=premise",
        "--column",
        "text_b=hypothesis",
        "--column",
        "label=label",
    ]
    if test is not None:
        args += ["--test-file", f"mine={test}"]
    if dev_size is not None:
        args += ["--dev-size", str(dev_size)]
    for name in LABELS:
        args += ["--label-names", name]
    return args


FAST = ["--batch-size", "8", "--learning-rate", "1e-3", "--max-seq-length", "32", "--epochs", "2"]
"""Loop options of a seconds-long run with the tiny model."""
