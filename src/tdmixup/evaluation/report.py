"""``report.md`` of a ``tdmixup run`` folder: accuracy / ECE per stage and set, counts, plots.

Built only from the files the stages wrote (``*/done.json``, ``aum_*/summary.json``), so it can
be regenerated at any time without the model. Numbers are shown ×100, as in the paper; each
accuracy carries its standard error on that test set, and a paragraph says which differences
between the stages exceed it. The class-mix section lists the samples per class of the training
set, every region, every AUM kept and flagged set and every training set, with the warnings the
stages recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tdmixup.core.layout import (
    AUM_SALIENCY_STAGE,
    DATAMAP,
    DATAMAP_HTML,
    DATAMAP_PNG,
    DONE,
    STAGE1,
    SUMMARY,
    TDMIXUP_STAGE,
    RunLayout,
    aum_subset,
    reliability_pngs,
)
from tdmixup.core.runio import atomic_write_text, read_json

ROWS = (
    (STAGE1, "100% train (baseline, stage 1)"),
    (TDMIXUP_STAGE, "TDMixUp: easy with AUM + ambiguous"),
    (AUM_SALIENCY_STAGE, "MixUp guided by AUM and saliency (Park & Caragea, ACL 2022)"),
)
SMALL_SCALE = 10_000
"""Below this many training rows the report points to the CPU-scale benchmark (the paper: 550k)."""
NOISE_Z = 2.0
"""A difference counts as larger than noise beyond this many standard errors of the difference."""


def accuracy_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` test rows, ``sqrt(p (1 − p) / n)``
    (a fraction).

    >>> round(accuracy_se(0.7, 2100), 4)
    0.01
    """
    return math.sqrt(accuracy * (1 - accuracy) / n) if n > 0 else float("nan")


def _load(path: Path) -> dict[str, Any] | None:
    return dict(read_json(path)) if path.exists() else None


def metrics_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown table: one row per (label, done.json summary); per set Acc, ECE and ECE after T."""
    sets: list[str] = []
    for _, summary in rows:
        for name in summary.get("metrics", {}).get("sets", {}):
            if name not in sets:
                sets.append(name)
    head = (
        "| method | train n | "
        + " | ".join(f"{s} Acc ± SE | {s} ECE | {s} ECE (T)" for s in sets)
        + " |"
    )
    sep = "|---|---:|" + "---:|" * (3 * len(sets))
    lines = [head, sep]
    for label, summary in rows:
        metrics = summary.get("metrics", {}).get("sets", {})
        cells = []
        for s in sets:
            m = metrics.get(s)
            if m is None:
                cells += ["–", "–", "–"]
                continue
            scaled = m.get("ece_scaled")
            acc = (
                f"{100 * m['accuracy']:.2f} ± {100 * accuracy_se(m['accuracy'], m['n']):.2f}"
                if "n" in m
                else f"{100 * m['accuracy']:.2f}"
            )
            cells += [
                acc,
                f"{100 * m['ece']:.2f}",
                "–" if scaled is None else f"{100 * scaled:.2f}",
            ]
        lines.append(
            f"| {label} | {'+'.join(str(n) for n in summary.get('train_sizes', []))} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


Score = tuple[float, float | None]
"""A mean and its standard deviation over seeds (None for one run), ×100."""


def ece_winners(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One markdown line per evaluation set: the method with the lowest ECE as trained and the one
    with the lowest ECE after temperature scaling, each with the runner-up.

    Args:
        entries: ``{"label": str, "scaled_only": bool,
            "sets": {set: {"ece": Score, "ece_scaled": Score}}}`` per method. ``scaled_only``
            rows (e.g. "100 % + temperature scaling", whose ECE is already the scaled one) are
            left out of both rankings, as they repeat a row's ECE (T), and quoted after them, to
            compare the winner as trained with.

    A win within one standard deviation of the runner-up is said to be one.

    >>> a = {"label": "a", "sets": {"t": {"ece": (2.0, None), "ece_scaled": (1.0, None)}}}
    >>> b = {"label": "b", "sets": {"t": {"ece": (1.5, None), "ece_scaled": (1.2, None)}}}
    >>> ece_winners([a, b])  # doctest: +NORMALIZE_WHITESPACE
    ['- lowest ECE on `t`: as trained **b** (1.50; next a 2.00); after temperature scaling
      **a** (1.00; next b 1.20)']
    """
    sets: list[str] = []
    for entry in entries:
        sets += [s for s in entry["sets"] if s not in sets]
    lines = []
    for s in sets:
        ranked_parts = []
        for key, what in (("ece", "as trained"), ("ece_scaled", "after temperature scaling")):
            scores = sorted(
                (
                    (e["sets"][s][key], e["label"])
                    for e in entries
                    if not e.get("scaled_only") and key in e["sets"].get(s, {})
                ),
                key=lambda x: x[0][0],
            )
            if not scores:
                continue
            ((best, best_std), label), rest = scores[0], scores[1:]
            part = f"{what} **{label}** ({best:.2f}"
            if rest:
                (second, second_std), second_label = rest[0]
                part += f"; next {second_label} {second:.2f}"
                stds = [x for x in (best_std, second_std) if x is not None]
                if stds and second - best <= max(stds):
                    part += ", within one std"
            ranked_parts.append(part + ")")
        ranked_parts += [
            f"for comparison {e['label']} {e['sets'][s]['ece'][0]:.2f}"
            for e in entries
            if e.get("scaled_only") and "ece" in e["sets"].get(s, {})
        ]
        if ranked_parts:
            lines.append(f"- lowest ECE on `{s}`: " + "; ".join(ranked_parts))
    return lines


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.md`` from the finished stages and return its path."""
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    config = _load(layout.config) or {}
    cfg = config.get("config", {})
    env = config.get("environment", {})
    out = ["# TDMixUp run report", ""]
    data, model, train = cfg.get("data", {}), cfg.get("model", {}), cfg.get("train", {})
    out += [
        f"- task: **{data.get('task')}**, train size: {data.get('train_size') or 'all'}, "
        f"model: `{model.get('name_or_path')}`, epochs: {train.get('epochs')}, "
        f"lr: {train.get('learning_rate')}, "
        f"batch: {train.get('batch_size')}, seed: {train.get('seed')}",
        f"- machine: {env.get('platform')}, {env.get('cpu_count')} CPUs, GPU: {env.get('gpu')}, "
        f"world size: {env.get('world_size')}, torch {env.get('versions', {}).get('torch')}",
        "",
    ]
    rows = [(label, s) for d, label in ROWS if (s := _load(run_dir / d / DONE)) is not None]
    if rows:
        out += [
            "## Accuracy and ECE (×100; ECE with 10 bins; "
            "(T) = after temperature scaling fitted on dev)",
            "",
            metrics_table(rows),
            "",
        ]
        out += ece_winners(
            [
                {
                    "label": label,
                    "sets": {
                        name: {k: (100 * m[k], None) for k in ("ece", "ece_scaled") if k in m}
                        for name, m in summary.get("metrics", {}).get("sets", {}).items()
                    },
                }
                for label, summary in rows
            ]
        ) + [""]
        out += learning_warnings(rows)
        out += noise_paragraph(rows, train_size=(rows[0][1].get("train_sizes") or [0])[0])
    out += _counts(run_dir)
    out += _suspects(run_dir)
    out += _class_mix(run_dir)
    out += _timings(run_dir)
    out += _plots(run_dir)
    path = layout.report
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


def _counts(run_dir: Path) -> list[str]:
    lines = ["## Samples per stage", ""]
    layout = RunLayout(run_dir)
    full = _load(layout.stage1 / DONE)
    if full:
        lines.append(
            f"- stage 1 (100 %): {full['train_sizes'][0]} training samples, "
            f"dynamics mode `{full.get('dynamics_mode')}`"
        )
    dm = _load(layout.datamap / DONE)
    if dm:
        lines.append("- regions: " + ", ".join(f"{k} {v}" for k, v in dm["regions"].items()))
    for aum_dir in layout.aum_dirs():
        s = _load(aum_dir / SUMMARY)
        if s:
            lines.append(
                f"- AUM on {aum_subset(aum_dir)}: "
                f"{s.get('n_flagged')} of {s.get('n')} flagged "
                f"(procedure `{s.get('procedure')}`, k = {s.get('percentile')}, "
                f"threshold samples `{s.get('threshold_balance', 'equal')}`, "
                f"skip_epochs = {s.get('skip_epochs', 0)}), "
                f"{s.get('n_kept')} kept"
            )
    td = _load(layout.tdmixup / DONE)
    if td:
        sizes = td["train_sizes"]
        lines.append(f"- stage 4 (TDMixUp): easy with AUM {sizes[0]} + ambiguous {sizes[1]}")
    split = _load(layout.aum_saliency_split / DONE)
    if split:
        lines.append(
            f"- AUM split for aum_saliency (quantile {split['quantile']}, "
            f"AUM threshold {split['threshold']:.3f}, "
            f"from `{split['dynamics_mode']}` dynamics): "
            f"high {split['n_high']}, low {split['n_low']}"
        )
    return lines + [""]


def class_mix_table(rows: list[tuple[str, dict[str, int]]]) -> str:
    """Markdown table: one row per (set, ``{class: count}``), counts and the share of each class."""
    classes: list[str] = []
    for _, counts in rows:
        classes += [c for c in counts if c not in classes]
    lines = ["| set | n | " + " | ".join(classes) + " |", "|---|---:|" + "---:|" * len(classes)]
    for label, counts in rows:
        n = sum(counts.values())
        cells = [
            f"{counts.get(c, 0)} ({100 * counts.get(c, 0) / n:.0f} %)" if n else "0"
            for c in classes
        ]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _class_mix(run_dir: Path) -> list[str]:
    """The class mix of the training set, the regions, the AUM sets and each training stage's
    sets."""
    rows: list[tuple[str, dict[str, int]]] = []
    warnings: list[str] = []
    layout = RunLayout(run_dir)
    dm = _load(layout.datamap / DONE) or {}
    for name, counts in dm.get("class_counts", {}).items():
        rows.append(("training set" if name == "train" else f"{name} region", counts))
    warnings += dm.get("class_warnings", [])
    for aum_dir in layout.aum_dirs():
        s = _load(aum_dir / SUMMARY) or {}
        for name in ("kept", "flagged"):
            if name in s.get("class_counts", {}):
                rows.append((f"AUM on {aum_subset(aum_dir)}: {name}", s["class_counts"][name]))
        warnings += s.get("class_warnings", [])
    for d, label in ROWS:
        s = _load(run_dir / d / DONE) or {}
        for i, counts in enumerate(s.get("train_class_counts", [])):
            if d != STAGE1:  # stage 1 trains on the training set, shown above
                rows.append((f"{label}: set {i + 1}", counts))
        warnings += s.get("class_warnings", [])
    if not rows:
        return []
    config = (_load(layout.config) or {}).get("config", {})
    strat = config.get("dynamics", {}).get("stratify_regions")
    how = {
        True: "taken within each class (`--stratify-regions`)",
        False: "one ranking over all samples (`--no-stratify-regions`)",
    }.get(strat, "one ranking over all samples (written before `--stratify-regions`)")
    out = [
        "## Class mix",
        "",
        f"Samples per class (share of the set); regions {how}.",
        "",
        class_mix_table(rows),
        "",
    ]
    if warnings:
        out += [
            "**Warnings** "
            "(a class absent from a set, or below half its share of the training set):",
            "",
        ]
        out += [f"- ⚠ {w}" for w in warnings] + [""]
    return out


def _timings(run_dir: Path) -> list[str]:
    lines = ["## Compute", ""]
    aum_dirs = [p.name for p in RunLayout(run_dir).aum_dirs()]
    for d in (STAGE1, *aum_dirs, TDMIXUP_STAGE, AUM_SALIENCY_STAGE):
        s = _load(run_dir / d / DONE) or _load(run_dir / d / SUMMARY)
        if s and "train_seconds" in s:
            lines.append(
                f"- {d}: train {s['train_seconds']:.0f} s"
                + (f", eval {s['eval_seconds']:.0f} s" if "eval_seconds" in s else "")
            )
    return lines + [""]


def _plots(run_dir: Path) -> list[str]:
    lines = ["## Plots", ""]
    if RunLayout(run_dir).datamap_png.exists():
        html, png = f"{DATAMAP}/{DATAMAP_HTML}", f"{DATAMAP}/{DATAMAP_PNG}"
        lines += [f"Data map (interactive: [{html}]({html})):", "", f"![data map]({png})", ""]
    for d, label in ROWS:
        for name, plot in reliability_pngs(run_dir / d).items():
            lines += [f"{label}, {name}:", "", f"![reliability]({d}/{plot.name})", ""]
    return lines


def _suspects(run_dir: Path) -> list[str]:
    """The flag sets' warnings and per-class suspect tables (data map: ``suspects.csv``; AUM:
    ``flagged.csv``), from ``datamap/done.json`` and ``aum_*/summary.json``."""
    from tdmixup.dynamics.suspects import per_class_markdown

    layout = RunLayout(run_dir)
    found: list[tuple[str, dict[str, Any]]] = []
    dm = _load(layout.datamap / DONE) or {}
    if dm.get("suspects"):
        share = dm["suspects"].get("flag_fraction")
        what = (  # a folder written before suspects.csv ranked every row: its hard region
            f"the lowest {share:.0%} flagged".replace("%", " %")
            if share is not None
            else "the hard-to-learn region"
        )
        found.append(
            (f"Data map: likely label issues (datamap/suspects.csv, {what})", dm["suspects"])
        )
    for aum_dir in layout.aum_dirs():
        s = _load(aum_dir / SUMMARY) or {}
        if s.get("flags"):
            found.append((f"AUM on {aum_subset(aum_dir)} ({aum_dir.name}/flagged.csv)", s["flags"]))
    if not found:
        return []
    lines = ["## Suspected wrong labels", ""]
    for title, flags in found:
        lines += [f"**Warning:** {w}." for w in flags.get("warnings", [])]
        lines += [
            *per_class_markdown(f"{title}, ranked by {flags.get('rank_by')}", flags["per_class"]),
            "",
        ]
    return lines


def learning_warnings(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One line per stage whose model stayed near chance (see
    :func:`tdmixup.evaluation.sets.learning_check`)."""
    lines = []
    for label, summary in rows:
        check = summary.get("metrics", {}).get("learning_check") or {}
        if check.get("near_chance"):
            lines.append(f"**Warning — {label}:** {check['message']}.")
    return [*lines, ""] if lines else []


def noise_paragraph(rows: list[tuple[str, dict[str, Any]]], *, train_size: int) -> list[str]:
    """What the table's differences mean: each later row's accuracy against the first row's, set by
    set, compared with ``NOISE_Z`` standard errors of the difference (test-set sampling only)."""
    if not rows:
        return []
    base_label, base = rows[0]
    base_sets = base.get("metrics", {}).get("sets", {})
    parts = []
    for label, summary in rows[1:]:
        for name, m in summary.get("metrics", {}).get("sets", {}).items():
            b = base_sets.get(name)
            if b is None or "n" not in m or "n" not in b:
                continue
            diff = m["accuracy"] - b["accuracy"]
            se = math.hypot(accuracy_se(m["accuracy"], m["n"]), accuracy_se(b["accuracy"], b["n"]))
            verdict = "larger than noise" if abs(diff) > NOISE_Z * se else "within noise"
            parts.append(
                f"on {name} (n = {m['n']:,}) {label.split(':')[0]} differs from the baseline by "
                f"{100 * diff:+.2f} points "
                f"(standard error of the difference ±{100 * se:.2f}): {verdict}"
            )
    text = [
        "**What the differences mean.** Each accuracy carries its standard error on that test set, "
        "sqrt(p(1−p)/n); it covers the sampling of the test rows only, "
        "not the spread between training seeds, which a single run cannot show."
    ]
    if parts:
        text.append(
            f"A difference counts as larger than noise beyond {NOISE_Z:g} standard errors "
            "of the difference (the two errors combined as if independent, "
            "which overstates it a little on the same test rows): " + "; ".join(parts) + "."
        )
    text.append(
        "ECE has no such simple standard error; compare it across seeds (`tdmixup experiment`)."
    )
    if 0 < train_size < SMALL_SCALE:
        text.append(
            f"This run trained on {train_size:,} rows; "
            "the paper's gains were measured on 550k SNLI pairs. In this "
            "project's CPU-scale SNLI measurements (1,500–2,000 pairs) "
            "TDMixUp trailed the 100 % baseline: fewer "
            "optimiser steps on its subsets, the hard third left out, AUM on a small easy set — "
            "`benchmarks/cpu_reproduction/README.md` in the tdmixup repository measures each."
        )
    return [" ".join(text), ""]
