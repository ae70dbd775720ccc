"""Evaluate a trained classifier on named sets: accuracy, ECE, NLL, Brier, temperature scaling.

The metric maths lives in :mod:`tdmixup.calibration` (pure functions); this module only runs the
model over the sets, fits the temperature on dev, and writes ``metrics.json`` and one reliability
diagram per set. Values are fractions (ECE 0.0122); reports multiply by 100.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from tdmixup.data.collate import TokenizedSet
from tdmixup.model import Classifier
from tdmixup.runio import write_json
from tdmixup.training import predict_logits


def evaluate_sets(
    model: Classifier,
    sets: dict[str, TokenizedSet],
    *,
    dev: TokenizedSet | None,
    accelerator: Any,
    batch_size: int,
    out_dir: Path | None = None,
    temperature_method: Literal["grid", "lbfgs"] = "grid",
) -> dict[str, Any]:
    """Metrics for every named set, plus the same after temperature scaling fitted on ``dev``.

    Returns:
        ``{"temperature": T or None, "sets": {name: {"n": ..., "accuracy": ..., "ece": ...,
        "mce": ..., "nll": ..., "brier": ..., "ece_scaled": ..., ...}}}`` (see
        :func:`tdmixup.calibration.calibration_report`); written to
        ``out_dir/metrics.json`` with reliability diagrams ``out_dir/reliability_<name>.png``
        when ``out_dir`` is given (main process only).
    """
    from tdmixup.calibration import calibration_report, fit_temperature, reliability_diagram

    temperature = None
    if dev is not None and len(dev):
        dev_ids, dev_logits = predict_logits(model, dev, batch_size=batch_size, accelerator=accelerator, desc="dev")
        dev_labels = dev.labels[dev.positions_of(dev_ids)]  # logits come back sorted by sample_id
        temperature = float(fit_temperature(dev_logits=dev_logits, dev_labels=dev_labels, method=temperature_method))
    results: dict[str, Any] = {"temperature": temperature, "sets": {}}
    for name, data in sets.items():
        ids, logits = predict_logits(model, data, batch_size=batch_size, accelerator=accelerator, desc=name)
        labels = data.labels[data.positions_of(ids)]
        report = calibration_report(logits=logits, labels=labels, temperature=temperature)
        results["sets"][name] = {"n": int(len(ids)), **report}
        if out_dir is not None and accelerator.is_main_process:
            reliability_diagram(labels=labels, logits=logits, path=out_dir / f"reliability_{name}.png",
                                title=f"{name} (n={len(ids)})")
    if out_dir is not None and accelerator.is_main_process:
        write_json(out_dir / "metrics.json", results)
    return results


def format_metrics(results: dict[str, Any]) -> str:
    """One line per set: accuracy and ECE ×100 (as the paper reports them), before/after scaling."""
    lines = []
    t = results.get("temperature")
    for name, m in results["sets"].items():
        line = f"{name:>14}: n={m['n']:>6}  acc {100 * m['accuracy']:6.2f}  ECE {100 * m['ece']:6.2f}  NLL {m['nll']:.4f}"
        if "ece_scaled" in m and t is not None:
            line += f"  | T={t:.2f}: ECE {100 * m['ece_scaled']:6.2f}"
        lines.append(line)
    return "\n".join(lines)


