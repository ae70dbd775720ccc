"""The paper's tables: what each row of ``tdmixup experiment table1|table2|table3|steps`` trains
(:class:`Row`, :data:`TABLES`), the paper's numbers to compare with (:data:`PAPER`), and how a
finished table is written: mean ± sample std over seeds in ``table.{md,csv,json}`` and an
accuracy-vs-ECE plot (:func:`write_table`).

Running the rows over seeds is :mod:`tdmixup.run.experiments`'s job; this module trains nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from tdmixup.core.config import MixupConfig, Strategy
from tdmixup.core.layout import TABLE_CSV, TABLE_JSON, TABLE_MD, TABLE_PLOT
from tdmixup.core.runio import atomic_output, atomic_write_text, write_json
from tdmixup.evaluation.report import ece_winners

EpochBudget = Literal["pass", "full_steps", "full_samples"]

PAPER_CODE = "paper_code"
"""A :attr:`Row.mixup` value for ``mixed_weight``: the paper code's 0.01 × mixed CE summed over the
batch and averaged over the classes, i.e. ``0.01 · B / C`` (SNLI, B = 16, C = 3: 0.0533; see
:mod:`tdmixup.strategies.step`)."""


@dataclass(frozen=True)
class Row:
    """One row of a table: which samples, which strategy, how long an epoch is, loss overrides.

    ``epoch``: ``"pass"`` — one pass over the row's data (the paper); ``"full_steps"`` — the 100 %
    row's optimiser steps per epoch; ``"full_samples"`` — as many training samples per epoch as the
    100 % row (its N rows), i.e. ``⌈N / (batches per step × batch size)⌉`` steps (TDMixUp and
    random pairs take two batches per step). The sets cycle when the epoch is not one pass.

    ``mixup``: :class:`~tdmixup.core.config.MixupConfig` fields this row sets, as ``(name, value)``
    pairs (``mixed_weight`` may be :data:`PAPER_CODE`); the run's other settings are kept.
    """

    key: str
    label: str
    strategy: Strategy = "none"
    sets: tuple[str, ...] = ("all",)  # region names, "+"-joined names are unions; "tdmixup" = the
    # pipeline's TDMixUp sets (easy with AUM, ambiguous)
    aum: tuple[str, ...] = ()  # regions filtered with AUM
    epoch: EpochBudget = "pass"
    mixup: tuple[tuple[str, float | str], ...] = ()
    label_smoothing: float | None = None  # this row's --label-smoothing ε (None: the run's)
    temperature_scaled: bool = (
        False  # report this row's metrics after temperature scaling (T fitted on dev)
    )

    def __post_init__(self) -> None:
        defaults = {f.name: f.default for f in fields(MixupConfig) if f.name != "strategy"}
        for name, value in self.mixup:
            if name not in defaults:
                raise ValueError(
                    f"row {self.key!r}: {name!r} is not a MixupConfig field "
                    f"(one of {sorted(defaults)})"
                )
            if isinstance(value, str) != isinstance(defaults[name], str) and (name, value) != (
                "mixed_weight",
                PAPER_CODE,
            ):
                raise ValueError(
                    f"row {self.key!r}: {name} = {value!r} has the wrong type "
                    f"(like {defaults[name]!r}; mixed_weight may also be {PAPER_CODE!r})"
                )
        if self.epoch not in get_args(EpochBudget):
            raise ValueError(
                f"row {self.key!r}: epoch must be one of {get_args(EpochBudget)}, "
                f"got {self.epoch!r}"
            )


PAPER_CODE_WEIGHTS: tuple[tuple[str, float | str], ...] = (
    ("mixed_weight", PAPER_CODE),
    ("unmixed_weight", 0.5),
)
"""The paper code's loss: 0.01 × Σ mixed CE / C + 0.5 × CE(easy) + 0.5 × CE(ambiguous)."""


LABEL_SMOOTHING_ROW = 0.1
"""ε of Table 2's label-smoothing row (torch's convention, see :mod:`tdmixup.strategies.step`): the
usual value (Szegedy et al. 2016) for a *plain fine-tuning* baseline. Park & Caragea's per-task
values (BERT: 0.001 SNLI, 0.03 QQP, 0.3 SWAG) were tuned for smoothing the mixed targets of their
MixUp only, not for plain fine-tuning, and 0.001 is no smoothing at all; ``--label-smoothing``
applies any ε to every row instead."""

TABLES: dict[str, tuple[Row, ...]] = {
    "table1": (
        Row("full", "100% train"),
        Row("easy", "33% train, Easy-to-learn", sets=("easy",)),
        Row("easy_aum", "24% train, Easy-to-learn with AUM", sets=("easy",), aum=("easy",)),
        Row("ambiguous", "33% train, Ambiguous", sets=("ambiguous",)),
        Row(
            "ambiguous_aum",
            "24% train, Ambiguous with AUM",
            sets=("ambiguous",),
            aum=("ambiguous",),
        ),
        Row("easy_ambiguous", "66% train, Easy-to-learn & Ambiguous", sets=("easy+ambiguous",)),
    ),
    "table2": (
        Row("full", "100% train"),
        Row("mixup", "100% train, MixUp (Zhang et al., 2018)", strategy="mixup"),
        Row("manifold", "100% train, M-MixUp (Verma et al., 2019)", strategy="manifold"),
        Row("kong", "100% train, MixUp for Calibration (Kong et al., 2020)", strategy="kong"),
        Row(
            "backtranslation",
            "100% train, Back Translation (Edunov et al., 2018)",
            sets=("backtranslation",),
        ),
        Row(
            "tdmixup_noaum",
            "66% train, TDMixUp, Easy-to-learn + Ambiguous",
            strategy="tdmixup",
            sets=("easy", "ambiguous"),
        ),
        Row(
            "tdmixup",
            "57% train, TDMixUp, Easy-to-learn with AUM + Ambiguous (Ours)",
            strategy="tdmixup",
            sets=("tdmixup",),
        ),
        Row(
            "full_ts",
            "100% train + temperature scaling (Guo et al., 2017; Desai & Durrett, 2020)",
            temperature_scaled=True,
        ),
        Row(
            "full_ls",
            f"100% train + label smoothing ε = {LABEL_SMOOTHING_ROW} (Desai & Durrett, 2020)",
            label_smoothing=LABEL_SMOOTHING_ROW,
        ),
        Row(
            "aum_saliency",
            "100% train, MixUp guided by AUM and saliency (Park & Caragea, ACL 2022)",
            strategy="aum_saliency",
            sets=("aum_saliency",),
        ),
    ),
    "table3": (
        Row(
            "random_pairs",
            "Random (MixUp on easy ∪ ambiguous)",
            strategy="random_pairs",
            sets=("easy+ambiguous",),
        ),
        Row("tdmixup", "Ours (TDMixUp)", strategy="tdmixup", sets=("tdmixup",)),
        Row(
            "tdmixup_paper_weights",
            "Ours (TDMixUp), the paper code's loss weights",
            strategy="tdmixup",
            sets=("tdmixup",),
            mixup=PAPER_CODE_WEIGHTS,
        ),
    ),
    "steps": (  # an ablation, not in the paper
        Row("full", "100% train"),
        Row(
            "random_pairs",
            "Random pairs, one pass over easy ∪ ambiguous per epoch (paper)",
            strategy="random_pairs",
            sets=("easy+ambiguous",),
        ),
        Row(
            "random_pairs_samples",
            "Random pairs, the 100% row's samples per epoch",
            strategy="random_pairs",
            sets=("easy+ambiguous",),
            epoch="full_samples",
        ),
        Row(
            "random_pairs_steps",
            "Random pairs, the 100% row's steps per epoch",
            strategy="random_pairs",
            sets=("easy+ambiguous",),
            epoch="full_steps",
        ),
        Row(
            "tdmixup",
            "TDMixUp, one pass over the larger set per epoch (paper)",
            strategy="tdmixup",
            sets=("tdmixup",),
        ),
        Row(
            "tdmixup_samples",
            "TDMixUp, the 100% row's samples per epoch",
            strategy="tdmixup",
            sets=("tdmixup",),
            epoch="full_samples",
        ),
        Row(
            "tdmixup_steps",
            "TDMixUp, the 100% row's steps per epoch",
            strategy="tdmixup",
            sets=("tdmixup",),
            epoch="full_steps",
        ),
    ),
}
"""Rows per table. In ``table3`` both arms have TDMixUp's structure (two batches of ``batch_size``
per step, row i × row i, the same loss; random pairs draw both batches from one pass over easy ∪
ambiguous), so only the pairing differs. ``steps`` is not in the paper: it asks whether TDMixUp
and random pairs lose to the 100 % row only because an epoch over a subset is shorter."""

TABLE_NOTES = {
    "table2": "Rows after TDMixUp are not in the paper. `100% + temperature scaling` is the 100 % "
    "row's own run with T fitted on dev (no extra training); its paper column is Desai & Durrett's "
    "BERT-base numbers after scaling. `ECE (T)` of every row is its ECE after the same scaling.",
    "table3": "Both arms take two batches of `batch_size` per step, mix row i with row i and "
    "weight the loss alike (random pairs: both batches from one pass over easy ∪ ambiguous, so "
    "with equal regions both take as many steps per epoch); only who is paired with whom differs. "
    "The paper-weights row uses the paper code's loss, 0.01·B/C × mixed + 0.5 × each unmixed batch "
    "(`--mixed-weight 0.0533 --unmixed-weight 0.5` on SNLI).",
    "steps": "Not in the paper. TDMixUp and random pairs train on subsets (easy ∪ ambiguous) with "
    "two batches per step, so one epoch has fewer optimiser steps and samples than the 100 % "
    "row's. The `_samples` rows train on as many samples per epoch as the 100 % row (N rows = N / "
    "(2 × batch) steps), the `_steps` rows take its number of steps (twice its samples); the sets "
    "are cycled (`--steps-per-epoch`), everything else equal.",
}

# The paper's numbers (BERT-base, mean of 5 runs): (in-domain acc, ECE, out-of-domain acc, ECE).
PAPER: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "snli": {
        "full": (90.04, 2.54, 73.52, 7.09),
        "easy": (82.78, 16.22, 61.41, 36.68),
        "easy_aum": (83.03, 15.05, 62.97, 32.48),
        "ambiguous": (89.71, 0.74, 72.52, 10.73),
        "ambiguous_aum": (87.88, 7.09, 70.87, 17.23),
        "easy_ambiguous": (89.65, 2.64, 73.89, 3.46),
        "mixup": (88.82, 7.73, 69.19, 19.51),
        "manifold": (89.45, 1.51, 73.22, 8.06),
        "kong": (89.25, 2.16, 64.90, 17.75),
        "backtranslation": (89.22, 1.98, 73.15, 8.46),
        "tdmixup_noaum": (89.73, 2.39, 72.83, 5.84),
        "tdmixup": (90.31, 1.22, 74.28, 2.91),
        "random_pairs": (89.59, 1.70, 73.22, 6.89),
        "full_ts": (90.04, 1.14, 73.52, 3.61),
    },
    "qqp": {
        "full": (90.27, 2.71, 87.63, 8.51),
        "easy": (63.16, 36.88, 81.07, 18.92),
        "easy_aum": (66.43, 33.93, 82.16, 17.46),
        "ambiguous": (87.51, 1.71, 86.62, 6.01),
        "ambiguous_aum": (88.63, 6.36, 86.59, 7.31),
        "easy_ambiguous": (90.23, 1.35, 87.29, 8.04),
        "mixup": (89.12, 9.04, 87.45, 11.70),
        "manifold": (89.93, 3.02, 87.58, 7.68),
        "kong": (90.24, 5.22, 74.51, 11.83),
        "backtranslation": (89.18, 5.01, 86.82, 8.83),
        "tdmixup_noaum": (89.77, 1.89, 87.63, 6.48),
        "tdmixup": (90.42, 1.53, 87.89, 6.08),
        "random_pairs": (89.87, 3.06, 87.23, 6.53),
        "full_ts": (90.27, 0.97, 87.63, 7.15),
    },
    "swag": {
        "full": (79.40, 2.49, 34.48, 12.62),
        "easy": (75.39, 17.51, 33.59, 29.38),
        "easy_aum": (75.56, 15.81, 33.67, 16.89),
        "ambiguous": (75.91, 1.84, 34.29, 8.40),
        "ambiguous_aum": (71.74, 7.55, 33.81, 3.76),
        "easy_ambiguous": (78.78, 2.51, 34.43, 9.68),
        "mixup": (74.98, 7.08, 33.22, 10.93),
        "manifold": (78.26, 4.12, 34.86, 13.56),
        "kong": (79.44, 1.10, 32.51, 31.61),
        "backtranslation": (76.22, 1.24, 34.97, 22.68),
        "tdmixup_noaum": (78.38, 4.21, 34.11, 10.54),
        "tdmixup": (79.59, 2.16, 35.21, 9.45),
        "random_pairs": (79.15, 4.51, 34.43, 15.87),
        "full_ts": (79.40, 0.85, 34.48, 12.83),
    },
}


SET_NOTES = {
    "mnli_ood": "the 1,599 MultiNLI dev-matched pairs of ChaosNLI (majority of 100 crowd labels), "
    "biased toward low-agreement pairs; the paper's out-of-domain column is the full MNLI test "
    "half (4,907 pairs)",
    "snli_test": "the official SNLI test set (rows with a gold label), possibly capped by "
    "--test-size",
    "hellaswag_test": "a seeded 20 % split of the HellaSWAG validation set; in the paper HellaSWAG "
    "is out-of-domain for SWAG",
}
"""What each evaluation set is, printed under the tables (so nobody compares unlike columns)."""


STD_NOTE = "- ± sample std over seeds (ddof = 1: Σ(x − x̄)² / (n − 1); – with one seed)."
"""The first note under every table."""


NOT_RUN = "not run yet"
"""What a table says of a row that has no finished seed
(:func:`tdmixup.run.experiments.write_finished_table`)."""


def select_rows(table: str, only_rows: Sequence[str] | None = None) -> tuple[Row, ...]:
    """``table``'s rows, or those named in ``only_rows`` (in the table's order).

    Raises:
        ValueError: a name that is not a row of ``table`` (the message lists them).
    """
    rows = TABLES[table]
    if only_rows is None:
        return rows
    keys = [row.key for row in rows]
    unknown = [name for name in only_rows if name not in keys]
    if unknown or not only_rows:
        raise ValueError(
            f"--rows: {', '.join(unknown) or 'no row'} is not a row of {table}; "
            f"its rows are {', '.join(keys)}"
        )
    return tuple(row for row in rows if row.key in only_rows)


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sample std (ddof = 1, ×100) of accuracy and ECE per evaluation set over seeds.

    With one seed the std is None (shown as "–"): one run says nothing about the spread.
    """
    runs = [r for r in per_seed.values() if "metrics" in r]
    skipped = [r["skipped"] for r in per_seed.values() if "skipped" in r]
    out: dict[str, Any] = {
        "seeds": len(runs),
        "skipped": skipped[0] if skipped and not runs else None,
        "sets": {},
    }
    if not runs:
        return out
    for name in runs[0]["metrics"]["sets"]:
        values = {
            k: np.array([100 * r["metrics"]["sets"][name][k] for r in runs])
            for k in ("accuracy", "ece", "ece_scaled")
            if k in runs[0]["metrics"]["sets"][name]
        }
        out["sets"][name] = {
            k: {"mean": float(v.mean()), "std": _sample_std(v)} for k, v in values.items()
        }
    out["train_size"] = runs[0]["train_sizes"]  # the first seed's (kept for older readers)
    out["train_sizes_per_seed"] = [r["train_sizes"] for r in runs]
    out["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
    return out


def _sample_std(values: np.ndarray) -> float | None:
    """Sample std over seeds, ``sqrt(Σ (x − x̄)² / (n − 1))``; None for fewer than 2 seeds."""
    return float(values.std(ddof=1)) if values.size > 1 else None


def _sizes_cell(per_seed: list[list[int]]) -> str:
    """Training-set sizes over seeds, one part per set: ``"495"`` or, where AUM kept a different
    number per seed, the range ``"(278–413)"``; sets joined by `` + `` (TDMixUp: easy +
    ambiguous)."""
    if not per_seed:
        return ""
    parts = []
    for sizes in zip(*per_seed, strict=True):
        lo, hi = min(sizes), max(sizes)
        parts.append(str(lo) if lo == hi else f"({lo}–{hi})")
    return " + ".join(parts)


def write_table(
    table: str,
    rows: tuple[Row, ...],
    results: dict[str, dict[int, dict[str, Any]]],
    task: str,
    out: Path,
) -> None:
    """``table.md`` / ``table.csv`` / ``table.json`` in the paper's layout (×100, mean ± sample
    std): per set accuracy, ECE and ECE after temperature scaling (``ECE (T)``), and which row has
    the lowest ECE before and after scaling (under the table)."""
    agg = {
        row.key: _scaled_view(aggregate(results[row.key]))
        if row.temperature_scaled
        else aggregate(results[row.key])
        for row in rows
    }
    sets = next((list(a["sets"]) for a in agg.values() if a["sets"]), [])
    paper = PAPER.get(task, {})
    header = (
        ["method", "train n", "seeds"]
        + [f"{s} {m}" for s in sets for m in ("Acc", "ECE", "ECE (T)")]
        + ["paper Acc/ECE (ID)", "paper Acc/ECE (OOD)", "train s/seed"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows = [header]
    for row in rows:
        a = agg[row.key]
        cells = [row.label, _sizes_cell(a.get("train_sizes_per_seed", [])), str(a["seeds"])]
        for s in sets:
            m = a["sets"].get(s)
            missing = "–" if a.get("skipped") == NOT_RUN else "skipped"
            cells += (
                [_mean_std(m, k) for k in ("accuracy", "ece", "ece_scaled")] if m else [missing] * 3
            )
        p = paper.get(row.key)
        cells += [
            f"{p[0]:.2f} / {p[1]:.2f}" if p else "–",
            f"{p[2]:.2f} / {p[3]:.2f}" if p else "–",
            f"{a['train_seconds']:.0f}" if "train_seconds" in a else (a.get("skipped") or "–")[:60],
        ]
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append(cells)
    title = (
        f"# {table} on {task} (accuracy and ECE ×100, mean ± sample std over seeds; "
        "paper: BERT-base, 5 seeds)\n\n"
    )
    notes = [STD_NOTE] + [f"- `{s}`: {SET_NOTES[s]}" for s in sets if s in SET_NOTES]
    notes += ece_winners(
        [
            {
                "label": row.label,
                "scaled_only": row.temperature_scaled,
                "sets": {
                    s: {k: (m[k]["mean"], m[k]["std"]) for k in ("ece", "ece_scaled") if k in m}
                    for s, m in agg[row.key]["sets"].items()
                },
            }
            for row in rows
        ]
    )
    if table in TABLE_NOTES:
        notes.insert(1, f"- {TABLE_NOTES[table]}")
    footer = ("\n" + "\n".join(notes) + "\n") if notes else ""
    atomic_write_text(out / TABLE_MD, title + "\n".join(lines) + "\n" + footer)
    buf = io.StringIO()
    csv.writer(buf).writerows(csv_rows)
    atomic_write_text(out / TABLE_CSV, buf.getvalue())
    table_rows = {r.key: {"label": r.label, **agg[r.key], "paper": paper.get(r.key)} for r in rows}
    write_json(out / TABLE_JSON, {"table": table, "task": task, "rows": table_rows})
    _scatter(agg, rows, sets, out / TABLE_PLOT, title=f"{table} on {task}")


def _mean_std(metrics: dict[str, Any], key: str) -> str:
    """``"mean ± std"`` of ``metrics[key]`` with 2 decimals; ``"mean ± –"`` when the std is None
    (one seed); ``"–"`` when the metric is absent."""
    if key not in metrics:
        return "–"
    m = metrics[key]
    return f"{m['mean']:.2f} ± " + ("–" if m.get("std") is None else f"{m['std']:.2f}")


def _scaled_view(agg: dict[str, Any]) -> dict[str, Any]:
    """An aggregated row read after temperature scaling: its ECE is the scaled ECE (accuracy is
    unchanged by a temperature)."""
    sets = {
        name: {
            **{k: v for k, v in m.items() if k != "ece"},
            **({"ece": m["ece_scaled"]} if "ece_scaled" in m else {}),
        }
        for name, m in agg["sets"].items()
    }
    return {**agg, "sets": sets}


def _scatter(
    agg: dict[str, Any], rows: tuple[Row, ...], sets: list[str], path: Path, title: str
) -> None:
    from matplotlib.figure import Figure

    if not sets:
        return
    fig = Figure(figsize=(5 * len(sets), 4))
    for i, s in enumerate(sets):
        ax = fig.add_subplot(1, len(sets), i + 1)
        for row in rows:
            m = agg[row.key]["sets"].get(s)
            if m:
                ax.errorbar(
                    m["ece"]["mean"],
                    m["accuracy"]["mean"],
                    xerr=m["ece"]["std"] or 0.0,
                    yerr=m["accuracy"]["std"] or 0.0,
                    fmt="o",
                    capsize=3,
                )
                ax.annotate(row.key, (m["ece"]["mean"], m["accuracy"]["mean"]), fontsize=8)
        ax.set_xlabel("ECE ×100 (lower is better)")
        ax.set_ylabel("accuracy ×100")
        ax.set_title(f"{title}: {s}")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
