"""What ``tdmixup dynamics``, ``datamap`` and ``aum`` print when they finish: a few lines saying
what was written where, the counts, any warning and the command to run next. The full figures
stay in the run folder's ``summary.json`` / ``done.json``; these functions only read them.

>>> for line in dynamics_lines({"train_sizes": [30], "history": [{}]}, Path("d"), "--task snli"):
...     print(line)
dynamics of 30 training samples over 1 epoch → d/dynamics.parquet (model: d/checkpoint)
next: tdmixup datamap --dynamics d/dynamics.parquet --output-dir map --task snli
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tdmixup.core.config import DataConfig
from tdmixup.core.layout import (
    CHECKPOINT,
    DATAMAP_HTML,
    DATAMAP_PNG,
    DYNAMICS,
    FLAGGED,
    KEPT,
    REGIONS_DIR,
    STATISTICS,
    SUMMARY,
    SUSPECTS,
    id_file,
    sample_csv,
)


def data_options(data: DataConfig) -> str:
    """The data options of the next command, short: ``--task snli``, or ``--task custom
    --train-file train.csv …`` (the ``…``: the same ``--column``/``--label-names`` and sizes)."""
    if data.train_file:
        return f"--task {data.task} --train-file {data.train_file} …"
    return f"--task {data.task}"


def _warnings(warnings: Sequence[str]) -> list[str]:
    return [f"warning: {w}" for w in dict.fromkeys(warnings)]


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs`` (``many``: an irregular plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def dynamics_lines(done: Mapping[str, Any], out: Path, data: str) -> list[str]:
    """``tdmixup dynamics``: the table written, its size and the ``datamap`` command next;
    ``done``: the stage's ``done.json``; ``data``: :func:`data_options`."""
    n, epochs = sum(done.get("train_sizes", [])), len(done.get("history", []))
    table = out / DYNAMICS
    return [
        f"dynamics of {n} training samples over {plural(epochs, 'epoch')} → {table} "
        f"(model: {out / CHECKPOINT})",
        f"next: tdmixup datamap --dynamics {table} --output-dir {out.parent / 'map'} {data}",
    ]


def datamap_lines(
    summary: Mapping[str, Any], out: Path, *, fraction: float, data: str | None
) -> list[str]:
    """``tdmixup datamap``: regions, suspects and plots written, warnings, and the ``aum`` command
    next; ``summary``: its ``summary.json``; ``data``: :func:`data_options`, or None when the
    data options are not known (a data map made from the table alone)."""
    regions = summary.get("regions", {})
    within = "every class" if summary.get("stratify_regions") else "the samples"
    sizes = ", ".join(f"{name} {n}" for name, n in regions.items())
    lines = [
        f"data map of {summary.get('n', 0)} training samples → {out}",
        f"  regions (each {fraction * 100:.3g} % of {within}): {sizes} → "
        f"{out / REGIONS_DIR}/<region>.txt",
    ]
    suspects = summary.get("suspects")
    warnings = list(summary.get("class_warnings", []))
    if suspects:
        lines.append(
            f"  suspects: {suspects['n_flagged']} of {suspects['n_pool']} flagged "
            f"(ranked by {suspects['rank_by']}, most suspicious first) → "
            f"{sample_csv(out, SUSPECTS)}"
        )
        warnings += suspects.get("warnings", [])
    lines.append(
        f"  plots: {out / DATAMAP_PNG}, {out / DATAMAP_HTML}; statistics: {out / STATISTICS}; "
        f"all figures: {out / SUMMARY}"
    )
    easy = out / REGIONS_DIR / "easy.txt"
    options = data if data is not None else "<the dynamics run's data options>"
    return [
        *lines,
        *_warnings(warnings),
        f"next: tdmixup aum {options} --subset {easy} --output-dir {out.parent / 'aum_easy'}",
    ]


def aum_lines(summary: Mapping[str, Any], out: Path, *, subset: str | None, data: str) -> list[str]:
    """``tdmixup aum``: kept and flagged counts and files, warnings, and the TDMixUp ``train``
    command next (with the ambiguous region beside an easy ``subset``); ``summary``: its
    ``summary.json``; ``data``: :func:`data_options`."""
    epochs, passes = summary.get("epochs"), summary.get("passes", 1)
    flags = summary.get("flags", {})
    lines = [
        f"AUM ({summary.get('procedure')}: {plural(passes, 'pass', 'passes')} of "
        f"{plural(epochs or 0, 'epoch')}, k = {summary.get('percentile'):g}): "
        f"{summary.get('n_flagged')} of {summary.get('n')} samples flagged, "
        f"{summary.get('n_kept')} kept → {out}",
        f"  kept: {id_file(out, KEPT)} (a --subset file), {sample_csv(out, KEPT)}; "
        f"flagged: {sample_csv(out, FLAGGED)} (lowest AUM first)",
        f"  all figures: {out / SUMMARY}",
        *_warnings([*summary.get("class_warnings", []), *flags.get("warnings", [])]),
    ]
    kept = id_file(out, KEPT)
    if subset is not None and Path(subset).name == "easy.txt":
        other = f"--subset {Path(subset).with_name('ambiguous.txt')}"
    else:
        other = "--subset <the ambiguous region's ids>"
    lines.append(
        f"next: tdmixup train {data} --strategy tdmixup --subset {kept} {other} "
        f"--output-dir {out.parent / 'td'}"
    )
    return lines
