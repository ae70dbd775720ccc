"""Evaluate a trained classifier on named sets: accuracy, ECE, NLL, Brier, temperature scaling.

The metric maths lives in :mod:`tdmixup.evaluation.calibration` (pure functions); this module only
runs the model over the sets, fits the temperature on dev, and writes ``metrics.json`` and one
reliability diagram per set. Values are fractions (ECE 0.0122); reports multiply by 100.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tdmixup.core.layout import METRICS, reliability_png
from tdmixup.core.runio import write_json
from tdmixup.data.collate import TokenizedSet
from tdmixup.model.classifier import Classifier
from tdmixup.model.predict import predict_logits


def evaluate_sets(
    model: Classifier,
    sets: dict[str, TokenizedSet],
    *,
    dev: TokenizedSet | None,
    accelerator: Any,
    batch_size: int,
    out_dir: Path | None = None,
    temperature_method: Literal["grid", "lbfgs"] = "grid",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Metrics for every named set, plus the same after temperature scaling fitted on ``dev``.

    ``precision`` autocasts the prediction passes (the run's: ``"fp32"``, ``"bf16"``,
    ``"fp16"``; see :func:`tdmixup.model.predict.predict_logits`).

    Returns:
        ``{"temperature": T or None, "sets": {name: {"n": ..., "accuracy": ..., "ece": ...,
        "mce": ..., "nll": ..., "brier": ..., "ece_scaled": ..., ...}}, "learning_check":
        ...}`` (see :func:`tdmixup.evaluation.calibration.calibration_report` and
        :func:`learning_check`, made on dev, else on the first set); written to
        ``out_dir/metrics.json`` with reliability diagrams ``out_dir/reliability_<name>.png``
        when ``out_dir`` is given (main process only).
    """
    from tdmixup.evaluation.calibration import (
        calibration_report,
        fit_temperature,
        reliability_diagram,
    )

    temperature = None
    check = None
    if dev is not None and len(dev):
        dev_ids, dev_logits = predict_logits(
            model,
            dev,
            batch_size=batch_size,
            accelerator=accelerator,
            desc="dev",
            precision=precision,
        )
        dev_labels = dev.labels[dev.positions_of(dev_ids)]  # logits come back sorted by sample_id
        temperature = float(
            fit_temperature(dev_logits=dev_logits, dev_labels=dev_labels, method=temperature_method)
        )
        check = learning_check(dev_labels, dev_logits, set_name="dev")
    results: dict[str, Any] = {"temperature": temperature, "sets": {}}
    for name, data in sets.items():
        ids, logits = predict_logits(
            model,
            data,
            batch_size=batch_size,
            accelerator=accelerator,
            desc=name,
            precision=precision,
        )
        labels = data.labels[data.positions_of(ids)]
        report = calibration_report(logits=logits, labels=labels, temperature=temperature)
        results["sets"][name] = {"n": int(len(ids)), **report}
        if check is None:
            check = learning_check(labels, logits, set_name=name)
        if out_dir is not None and accelerator.is_main_process:
            reliability_diagram(
                labels=labels,
                logits=logits,
                path=reliability_png(out_dir, name),
                title=f"{name} (n={len(ids)})",
            )
    results["learning_check"] = check
    if out_dir is not None and accelerator.is_main_process:
        write_json(out_dir / METRICS, results)
    return results


CHANCE_MARGIN = 0.03
"""Accuracy within this many (fraction) points of chance counts as near chance, whatever n."""
CHANCE_Z = 2.0
"""…and so does accuracy less than this many standard errors above chance (one-sided p ≈ 0.02)."""


def learning_check(labels: np.ndarray, logits: np.ndarray, *, set_name: str) -> dict[str, Any]:
    """Did the model learn anything? Accuracy on one set against what a constant guess scores.

    Args:
        labels: gold class indices, shape ``[N]``.
        logits: the model's scores, shape ``[N, C]``.
        set_name: named in the message (``"dev"``).

    Returns:
        ``{"set", "n", "accuracy", "chance", "threshold", "near_chance", "message"}`` (fractions).
        ``chance`` = the larger of ``1/C`` and the majority class's share of ``labels`` (what
        predicting that one class everywhere scores); the model is *near chance* when its
        accuracy is below ``threshold = chance + max(CHANCE_MARGIN, CHANCE_Z · SE)`` with
        ``SE = sqrt(chance · (1 − chance) / N)``. ``message`` is one line saying so and what
        to change, or ``None`` when the accuracy is clearly above chance.

    >>> y = np.array([0, 1, 2] * 100)
    >>> learning_check(y, np.eye(3)[y], set_name="dev")["near_chance"]
    False
    >>> learning_check(y, np.zeros((300, 3)), set_name="dev")["near_chance"]
    True
    """
    labels = np.asarray(labels)
    logits = np.asarray(logits)
    n, c = logits.shape
    accuracy = float(np.mean(logits.argmax(axis=1) == labels)) if n else 0.0
    majority = float(np.bincount(labels, minlength=c).max() / n) if n else 0.0
    chance = max(1.0 / c, majority)
    threshold = chance + max(CHANCE_MARGIN, CHANCE_Z * math.sqrt(chance * (1 - chance) / max(n, 1)))
    near = accuracy < threshold
    message = None
    if near:
        message = (
            f"the model has not learned: {set_name} accuracy {100 * accuracy:.1f} % "
            f"is not clearly above chance ({100 * chance:.1f} %; "
            f"n = {n} needs > {100 * threshold:.1f} %), so its predictions (and any data map "
            "or AUM from this training) mean nothing; train on more data (--train-size, or a "
            "smaller --dev-size), with a higher --learning-rate or more --epochs"
        )
    return {
        "set": set_name,
        "n": int(n),
        "accuracy": accuracy,
        "chance": chance,
        "threshold": threshold,
        "near_chance": bool(near),
        "message": message,
    }


def format_metrics(results: dict[str, Any]) -> str:
    """One line per set: accuracy and ECE ×100 (as the paper reports them), before/after scaling;
    then a warning line when the :func:`learning_check` found the model near chance."""
    lines = []
    t = results.get("temperature")
    for name, m in results["sets"].items():
        line = (
            f"{name:>14}: n={m['n']:>6}  acc {100 * m['accuracy']:6.2f}  "
            f"ECE {100 * m['ece']:6.2f}  NLL {m['nll']:.4f}"
        )
        if "ece_scaled" in m and t is not None:
            line += f"  | T={t:.2f}: ECE {100 * m['ece_scaled']:6.2f}"
        lines.append(line)
    check = results.get("learning_check") or {}
    if check.get("near_chance"):
        lines.append(f"warning: {check['message']}")
    return "\n".join(lines)
