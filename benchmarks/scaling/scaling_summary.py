"""The scaling study's summary: mean ± sample std per (size, row) from the per-run JSONs, the
data map's agreement with human ambiguity per size, ``summary.json``, ``table.md`` and
``scaling.png``.

Pure numpy/matplotlib over the files in ``<results>/runs/``; no model, no torch, so it runs
at any time (also while the study is still going) in a second.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tdmixup.core.runio import atomic_output, atomic_write_text, write_json

METRICS = ("accuracy", "ece", "ece_scaled", "nll", "brier")
"""Per test set, in each run JSON (fractions; tables show accuracy and ECE ×100)."""
PERCENT = {"accuracy", "ece", "ece_scaled"}
SET_TITLES = {"snli_test": "in domain: SNLI test", "mnli_ood": "out of domain: ChaosNLI MultiNLI"}
ROW_STYLE = {  # key: (label, colour, marker)
    "full": ("100 % fine-tuning", "tab:blue", "o"),
    "tdmixup": ("TDMixUp", "tab:red", "s"),
    "random_pairs": ("random pairs of easy ∪ ambiguous", "tab:green", "^"),
    "manifold": ("Manifold MixUp", "tab:purple", "D"),
    "full_1epoch": ("100 % for TDMixUp's step count (1 epoch)", "tab:cyan", "v"),
}
LINE_STYLE = {"full_1epoch": ":"}
"""Rows drawn other than solid: the control, dotted."""
CONTROLS = {"full_1epoch": ("results_full_1epoch", "full", {"epochs": 1})}
"""Control rows kept in a results folder of their own beside the study's (their settings differ,
so the study's folder refuses them): key → (folder beside the results folder, the row they ran,
the settings that differ from the study's). ``full_1epoch``: the 100 % row trained for one epoch,
as many optimiser steps as TDMixUp makes in three."""
TS_LABEL = "100 % + temperature scaling"
TS_ROWS = {
    "full": ("full_ts", TS_LABEL),
    "tdmixup": ("tdmixup_ts", "TDMixUp + temperature scaling"),
}
"""Rows also drawn after temperature scaling (dashed, hollow markers, in the ECE panels): key →
(the summary's key for the scaled line, its label)."""
TS_KEYS = frozenset(ts_key for ts_key, _ in TS_ROWS.values())
"""The summary's keys of the scaled lines: not rows of their own in the table or the seed count."""
PAIRS = (
    ("tdmixup", "full"),
    ("random_pairs", "full"),
    ("manifold", "full"),
    ("tdmixup", "random_pairs"),
    ("tdmixup", "full_1epoch"),
)
"""Paired comparisons (row, baseline): the same seed shares the data map and the first-stage run,
so per-seed differences separate a method's effect from the seed's (the std of a difference is
often far below either row's own std)."""
PAIRED_METRICS = ("accuracy", "ece", "ece_scaled")
QUALITY_ROW = "datamap_quality"
REGIONS = ("easy", "ambiguous", "hard")


def mean_std(values: Iterable[float]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` with the *sample* standard deviation (ddof = 1; None for n = 1)
    over the finite values (a correlation is NaN when a tiny run's statistics are constant)."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "n": int(v.size),
    }


def load_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every ``<size>_<row>_seed<s>.json`` in ``runs_dir`` (sorted by name)."""
    return [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*_seed*.json"))]


COMPUTE_SETTINGS = ("bf16",)
"""Settings that say how a run computes, not what it studies: they may differ between the runs of
one study, and each run's own value is listed (``precision`` in the summary, a line in table.md).
``bf16``: bfloat16 autocast of the training forward pass keeps fp32's loss curve (per-epoch mean
loss within 1e-3, ``benchmarks/speed_options.py --curve``) but is 13-18x *slower* than fp32 on a CPU
without native bfloat16 (measured on an AMD EPYC with AVX2), so a study that moves between
machines may need both."""


def study_part(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without :data:`COMPUTE_SETTINGS`: what runs must share to be averaged."""
    return {k: v for k, v in settings.items() if k not in COMPUTE_SETTINGS}


def check_settings(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The study settings every run shares (test size, epochs, lr, ...; not the per-run
    :data:`COMPUTE_SETTINGS`); raises naming the first run whose settings differ, since their
    numbers could not be averaged together."""
    if not runs:
        return {}
    first = study_part(runs[0]["settings"])
    for r in runs[1:]:
        theirs = study_part(r["settings"])
        if theirs != first:
            diff = {
                k: (first.get(k), theirs.get(k))
                for k in set(first) | set(theirs)
                if first.get(k) != theirs.get(k)
            }
            raise ValueError(
                f"run {r['size']}_{r['row']}_seed{r['seed']} has other study settings than "
                f"{first_name(runs)}: {diff}; summarise them from separate results folders"
            )
    return first


def precision_name(bf16: bool | None) -> str:
    """How a run with ``settings.bf16`` trained, in words."""
    return "bf16 autocast" if bf16 else "fp32"


def precision(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each training precision in use → the runs (``<size>_<row>_seed<s>``) that trained in it."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        out[precision_name(r["settings"].get("bf16"))].append(
            f"{r['size']}_{r['row']}_seed{r['seed']}"
        )
    return dict(sorted(out.items()))


def load_controls(results: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The control runs of :data:`CONTROLS` found beside ``results``, relabelled with their control
    key; raises naming the first whose settings are not the study's plus the control's change."""
    out: list[dict[str, Any]] = []
    for key, (folder, row, changed) in CONTROLS.items():
        where = results.parent / folder
        if where.resolve() == results.resolve() or not (where / "runs").is_dir():
            continue
        expected = dict(settings, **changed)
        for r in load_runs(where / "runs"):
            if r["row"] != row:
                continue
            if settings and study_part(r["settings"]) != expected:
                raise ValueError(
                    f"control run {where}/runs/{r['size']}_{r['row']}_seed{r['seed']}.json has "
                    f"settings {r['settings']}, not the study's with {changed}"
                )
            out.append(dict(r, row=key))
    return out


def first_name(runs: list[dict[str, Any]]) -> str:
    r = runs[0]
    return f"{r['size']}_{r['row']}_seed{r['seed']}"


def aggregate_rows(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """``{size: {row: {"seeds": [...], "sets": {set: {metric: mean_std}}, "train_seconds": ...}}}``
    over the training rows; ``full_ts`` / ``tdmixup_ts`` are those rows after temperature scaling
    (:data:`TS_ROWS`; their accuracy is the row's own: scaling does not change the argmax)."""
    by: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["row"] != QUALITY_ROW:
            by[int(r["size"])][r["row"]].append(r)
    out: dict[int, dict[str, Any]] = {}
    for size in sorted(by):
        out[size] = {}
        for row, rs in sorted(by[size].items()):
            sets = sorted({s for r in rs for s in r["test_sets"]})
            out[size][row] = {
                "seeds": sorted(r["seed"] for r in rs),
                "sets": {
                    s: {
                        m: mean_std(r["test_sets"][s][m] for r in rs if s in r["test_sets"])
                        for m in METRICS
                    }
                    for s in sets
                },
                "train_sizes": [r["train_sizes"] for r in rs],
                "train_seconds": mean_std(r["train_seconds"] for r in rs),
                "temperature": mean_std(
                    r["temperature"] for r in rs if r.get("temperature") is not None
                ),
            }
            if row in TS_ROWS:
                out[size][TS_ROWS[row][0]] = {
                    "seeds": out[size][row]["seeds"],
                    "sets": {
                        s: {"accuracy": v["accuracy"], "ece": v["ece_scaled"]}
                        for s, v in out[size][row]["sets"].items()
                    },
                }
    return out


def paired_differences(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """``{size: {"<row> - <baseline>": {"seeds": [...], "sets": {set: {metric: mean_std}}}}}``:
    per seed, the row's metric minus the baseline's on the same seed (fractions), over the seeds
    both have finished, for every pair in ``PAIRS`` with at least one such seed."""
    by = {(int(r["size"]), r["row"], r["seed"]): r for r in runs if "test_sets" in r}
    out: dict[int, dict[str, Any]] = {}
    for size in sorted({k[0] for k in by}):
        for row, base in PAIRS:
            seeds = sorted(
                k[2] for k in by if k[0] == size and k[1] == row and (size, base, k[2]) in by
            )
            if not seeds:
                continue
            both = [(by[size, row, s]["test_sets"], by[size, base, s]["test_sets"]) for s in seeds]
            sets = sorted({t for a, b in both for t in a if t in b})
            out.setdefault(size, {})[f"{row} - {base}"] = {
                "seeds": seeds,
                "sets": {
                    t: {
                        m: mean_std(a[t][m] - b[t][m] for a, b in both if t in a and t in b)
                        for m in PAIRED_METRICS
                    }
                    for t in sets
                },
            }
    return out


def aggregate_quality(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per size: ChaosNLI crowd entropy per region and Spearman correlations (dynamics-only runs),
    and each class's share of each region of the map the rows used (the 100 % runs' records)."""
    out: dict[int, dict[str, Any]] = {}
    for size in sorted({int(r["size"]) for r in runs}):
        q = [r for r in runs if int(r["size"]) == size and r["row"] == QUALITY_ROW]
        entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in q)}
        if q:
            entry["mean_entropy"] = {
                g: mean_std(
                    r["per_region"][g]["mean_entropy"]
                    for r in q
                    if r["per_region"][g]["mean_entropy"] is not None
                )
                for g in (*REGIONS, "none")
            }
            entry["share_of_chaosnli_rows"] = {
                g: mean_std(r["per_region"][g]["share_of_chaosnli_rows"] for r in q)
                for g in (*REGIONS, "none")
            }
            entry["spearman"] = {
                k: mean_std(r["spearman"][k]["rho"] for r in q) for k in q[0]["spearman"]
            }
        full = [
            r
            for r in runs
            if int(r["size"]) == size and r["row"] == "full" and r.get("class_counts")
        ]
        if full:
            names = full[0]["label_names"]
            entry["class_share_per_region"] = {
                g: {
                    name: mean_std(_share(r["class_counts"]["regions"][g], i) for r in full)
                    for i, name in enumerate(names)
                }
                for g in REGIONS
            }
            entry["class_share_of_training_set"] = {
                name: mean_std(_share(r["class_counts"]["train"], i) for r in full)
                for i, name in enumerate(names)
            }
        out[size] = entry
    return out


def _share(counts: list[int], i: int) -> float:
    total = sum(counts)
    return counts[i] / total if total else math.nan


def summarize(results: Path) -> dict[str, Any]:
    """Write ``summary.json``, ``table.md`` and ``scaling.png`` into ``results`` from
    ``results/runs/*.json``; returns the summary."""
    runs = load_runs(results / "runs")
    settings = check_settings(runs)
    controls = load_controls(results, settings)
    trained = [r for r in runs if "test_sets" in r]
    summary = {
        "what": "TDMixUp against plain fine-tuning by training size (real SNLI, MiniLM, CPU): "
        "mean ± sample std (ddof = 1) over seeds; metrics are fractions (accuracy, ECE, "
        "ECE after temperature scaling on dev, NLL, Brier)",
        "settings": settings,
        "test_sets": runs[0]["test_set_notes"] if runs else {},
        "test_rows": {
            s: m.get("n") for s, m in (trained[0]["test_sets"].items() if trained else [])
        },
        "runs": len(runs),
        "precision": precision(runs + controls),
        "controls": {
            key: {"folder": CONTROLS[key][0], "changed": CONTROLS[key][2], "runs": n}
            for key in CONTROLS
            if (n := sum(r["row"] == key for r in controls))
        },
        "rows": {str(k): v for k, v in aggregate_rows(runs + controls).items()},
        "paired_differences": {str(k): v for k, v in paired_differences(runs + controls).items()},
        "datamap_quality": {str(k): v for k, v in aggregate_quality(runs).items()},
    }
    write_json(results / "summary.json", summary)
    atomic_write_text(results / "table.md", markdown(summary))
    plot(summary, results / "scaling.png")
    return summary


# --- table.md ------------------------------------------------------------------------------
def _cell(ms: dict[str, Any] | None, scale: float = 100.0, digits: int = 2) -> str:
    if not ms or ms["mean"] is None:
        return "–"
    if ms["std"] is None:
        return f"{scale * ms['mean']:.{digits}f}"
    return f"{scale * ms['mean']:.{digits}f} ± {scale * ms['std']:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """The tables of ``table.md``: one per test set (rows × sizes), then the data map's quality."""
    s = summary["settings"]
    lines = [
        "# Scaling study: TDMixUp against plain fine-tuning by training size",
        "",
        f"Real SNLI, {s.get('model', '?')}, {s.get('epochs', '?')} epochs, "
        f"lr {s.get('learning_rate', '?')}, "
        f"batch {s.get('batch_size', '?')}, dev {s.get('dev_size', '?')} pairs (temperature), CPU. "
        "Mean ± sample std (ddof = 1) over the seeds shown (n); "
        "accuracy and ECE ×100, NLL and Brier as is. "
        "A cell without ± has one seed.",
        "",
    ]
    for name, note in summary["test_sets"].items():
        lines.append(f"- `{name}`: {note}")
    for key, c in summary.get("controls", {}).items():
        lines.append(
            f'- control row "{ROW_STYLE.get(key, (key,))[0]}": {c["runs"]} runs from '
            f"`{c['folder']}/` (the study's settings except "
            + ", ".join(f"{k} = {v}" for k, v in c["changed"].items())
            + ")"
        )
    by_precision = summary.get("precision", {})
    for name, which in by_precision.items():
        lines.append(
            f"- trained in {name}: {len(which)} runs"
            + (f" ({', '.join(which)})" if len(which) <= 6 else "")
        )
    rows = summary["rows"]
    for test in summary["test_sets"]:
        lines += [
            "",
            f"## {SET_TITLES.get(test, test)} (`{test}`)",
            "",
            "| size | method | n | acc | ECE | ECE after TS | NLL | Brier | train n | train s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size, by_row in rows.items():
            for key, agg in by_row.items():
                if key in TS_KEYS or test not in agg["sets"]:
                    continue
                m = agg["sets"][test]
                sizes = sorted({" + ".join(map(str, t)) for t in agg["train_sizes"]})
                lines.append(
                    f"| {int(size):,} | {ROW_STYLE.get(key, (key,))[0]} | {len(agg['seeds'])} | "
                    f"{_cell(m['accuracy'])} | {_cell(m['ece'])} | {_cell(m['ece_scaled'])} | "
                    f"{_cell(m['nll'], 1, 3)} | {_cell(m['brier'], 1, 3)} | "
                    f"{sizes[0] if len(sizes) == 1 else sizes[0] + ' … ' + sizes[-1]} | "
                    f"{_cell(agg['train_seconds'], 1, 0)} |"
                )
    lines += _paired_markdown(summary)
    lines += [
        "",
        "## The data map against human ambiguity (ChaosNLI SNLI pairs, 100 crowd labels each)",
        "",
        "Dynamics-only runs on the size's pairs + the 1,514 ChaosNLI SNLI pairs (see the README); "
        "crowd entropy in bits (higher = humans disagree more).",
        "",
        "| size | n | Spearman(variability, H) | Spearman(confidence, H) "
        "| mean H easy | mean H ambiguous | mean H hard |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, q in summary["datamap_quality"].items():
        if not q.get("seeds"):
            continue
        sp, h = q["spearman"], q["mean_entropy"]
        lines.append(
            f"| {int(size):,} | {len(q['seeds'])} | "
            f"{_cell(sp.get('variability_vs_entropy'), 1, 3)} | "
            f"{_cell(sp.get('confidence_vs_entropy'), 1, 3)} | "
            + " | ".join(_cell(h[g], 1, 3) for g in REGIONS)
            + " |"
        )
    lines += [
        "",
        "Each class's share of each region (%) of the data map the rows used (the 100 % runs):",
        "",
        "| size | region | " + " | ".join(_label_names(summary)) + " |",
        "|---|---|" + "---|" * len(_label_names(summary)),
    ]
    for size, q in summary["datamap_quality"].items():
        for g, shares in q.get("class_share_per_region", {}).items():
            lines.append(
                f"| {int(size):,} | {g} | " + " | ".join(_cell(v) for v in shares.values()) + " |"
            )
    return "\n".join(lines) + "\n"


def _paired_markdown(summary: dict[str, Any]) -> list[str]:
    """The table of per-seed differences (row − baseline on the same seed), ×100."""
    paired = summary.get("paired_differences", {})
    if not paired:
        return []
    tests = list(summary["test_sets"])
    lines = [
        "",
        "## Paired differences: a row minus its baseline on the same seed (×100)",
        "",
        "Each seed's two runs share the data map (the same first-stage run), so the difference "
        "per seed removes the seed's own luck; mean ± sample std of the differences over the "
        "seeds both finished (n). Accuracy: > 0 = the row is more accurate; ECE: < 0 = the row "
        "is better calibrated.",
        "",
        "| size | comparison | n | "
        + " | ".join(f"{t}: Δacc | {t}: ΔECE | {t}: ΔECE after TS" for t in tests)
        + " |",
        "|---|---|---|" + "---|" * (3 * len(tests)),
    ]
    for size, comparisons in paired.items():
        for name, diff in comparisons.items():
            row, base = name.split(" - ")
            label = f"{ROW_STYLE.get(row, (row,))[0]} − {ROW_STYLE.get(base, (base,))[0]}"
            cells = [_cell(diff["sets"].get(t, {}).get(m)) for t in tests for m in PAIRED_METRICS]
            lines.append(
                f"| {int(size):,} | {label} | {len(diff['seeds'])} | " + " | ".join(cells) + " |"
            )
    return lines


def _label_names(summary: dict[str, Any]) -> list[str]:
    for q in summary["datamap_quality"].values():
        if "class_share_per_region" in q:
            return list(q["class_share_per_region"]["easy"])
    return []


# --- scaling.png ---------------------------------------------------------------------------
def plot(summary: dict[str, Any], path: Path) -> None:
    """Accuracy (top) and ECE (bottom) ×100 against training size (log x), in-domain (left) and
    out-of-domain (right); one line per row with sample-std error bars, the 100 % row after
    temperature scaling dashed in the ECE panels."""
    from matplotlib.figure import Figure

    rows = summary["rows"]
    tests = list(summary["test_sets"]) or ["snli_test", "mnli_ood"]
    fig = Figure(figsize=(12, 8.5))
    axes = fig.subplots(2, len(tests), squeeze=False)
    sizes_all = sorted(int(s) for s in rows)
    keys = [k for k in ROW_STYLE if any(k in rows[s] for s in rows)]
    for j, test in enumerate(tests):
        for i, metric in enumerate(("accuracy", "ece")):
            ax = axes[i][j]
            lines = [(k, *ROW_STYLE[k], metric, LINE_STYLE.get(k, "-")) for k in keys]
            if metric == "ece":
                lines += [
                    (ts_key, ts_label, ROW_STYLE[row][1], ROW_STYLE[row][2], "ece", "--")
                    for row, (ts_key, ts_label) in TS_ROWS.items()
                    if any(ts_key in rows[s] for s in rows)
                ]
            for n, (key, label, colour, marker, m, style) in enumerate(lines):
                pts = [
                    (int(s), rows[s][key]["sets"][test][m])
                    for s in rows
                    if key in rows[s]
                    and test in rows[s][key]["sets"]
                    and rows[s][key]["sets"][test][m]["mean"] is not None
                ]
                if not pts:
                    continue
                jitter = 1 + 0.025 * (
                    n - (len(lines) - 1) / 2
                )  # keeps error bars apart on the log axis
                x = [p[0] * jitter for p in pts]
                y = [100 * p[1]["mean"] for p in pts]
                err = [100 * (p[1]["std"] or 0.0) for p in pts]
                ax.errorbar(
                    x,
                    y,
                    yerr=err,
                    label=label,
                    color=colour,
                    marker=marker,
                    linestyle=style,
                    capsize=4,
                    markerfacecolor="white" if style == "--" else colour,
                    linewidth=1.6,
                    markersize=6,
                )
            ax.set_xscale("log")
            ax.set_xlim(min(sizes_all) / 1.6, max(sizes_all) * 1.6)  # one size: a readable range
            ax.set_xticks(sizes_all, [f"{s:,}" for s in sizes_all])
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            n = summary.get("test_rows", {}).get(test)
            ax.set_title(SET_TITLES.get(test, test) + (f" ({n:,} pairs)" if n else ""), fontsize=11)
            ax.set_ylabel(
                "accuracy ×100 (higher is better)"
                if metric == "accuracy"
                else "ECE ×100 (lower is better)"
            )
            if i == 1:
                ax.set_xlabel("training pairs (log scale)")
    handles, labels = axes[1][0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(len(labels), 3),
            frameon=False,
            fontsize=10,
        )
    nseeds = sorted(
        {len(v["seeds"]) for r in rows.values() for k, v in r.items() if k not in TS_KEYS}
    )
    model = str(summary["settings"].get("model", "")).split(":")[-1].rstrip("/").split("/")[-1]
    fig.suptitle(
        f"TDMixUp vs plain fine-tuning by training size (SNLI, {model}; mean ± sample std over "
        f"{'/'.join(map(str, nseeds)) or '0'} seed{'' if nseeds == [1] else 's'})",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(labels) / 3), 1, 0.97))
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
