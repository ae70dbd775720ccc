"""Calibration metrics, temperature scaling and reliability diagrams.

Pure functions on arrays: ``[N, C]`` scores and ``[N]`` integer labels (numpy arrays or torch
tensors, converted to float64 numpy). Scores are passed as ``logits`` (pre-softmax; the second
positional argument, after ``labels``) or ``probs=`` (rows on the simplex, keyword only);
exactly one of the two must be given, nothing is guessed: ``expected_calibration_error(y, z)``
reads ``z`` as logits, and warns when its rows look like probabilities.

Conventions follow Desai & Durrett (2020), "Calibration of Pre-trained Transformers", which
in turn follow Guo et al. (2017), "On Calibration of Modern Neural Networks":

* confidence = max softmax probability, prediction = its index (first index on ties);
* ``n_bins`` equal-width bins, bin ``j`` = ``[j/n_bins, (j+1)/n_bins)``, and a confidence of
  exactly 1.0 falls into the last bin;
* temperature scaling fits one scalar ``T`` on dev logits by minimising NLL over the grid
  0.01, 0.02, ..., 10.00.

All metrics are fractions (ECE 0.044, not 4.4); percentages belong in reports only.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tdmixup.core.arrays import class_labels
from tdmixup.core.runio import atomic_output

__all__ = [
    "accuracy",
    "brier_score",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "reliability_diagram",
]

PROB_SUM_ATOL = 1e-3
"""Largest accepted ``|Σ_c p_c − 1|`` per row of ``probs`` (float16/float32 round-off)."""

_PROB_FLOOR = 1e-12
"""``probs`` are clipped to at least this before taking logs (NLL from probabilities)."""

_GRID_ELEMENTS = 1 << 22
"""Grid search evaluates at most this many ``T × N × C`` scaled logits at once (~32 MiB)."""


# --------------------------------------------------------------------------- validation


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{name} is required, got None")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():  # also bfloat16, which numpy cannot hold
            x = x.double()
        x = x.numpy()
    return np.asarray(x)


def _check_scores(x: Any, name: str) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape [N, C] with N >= 1 samples and C >= 2 classes, got shape "
            f"{arr.shape}; for a single sigmoid output p use np.stack([1 - p, p], axis=1)"
            + (" (the order is labels first, then logits)" if arr.ndim == 1 else "")
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} must be finite, got {arr[bad[0]].tolist()} in row {bad[0]}")
    return arr


def _check_probs(x: Any) -> np.ndarray:
    probs = _check_scores(x, "probs")
    bad = np.flatnonzero(((probs < 0) | (probs > 1)).any(axis=1))
    if bad.size:
        raise ValueError(
            f"probs must lie in [0, 1], got {probs[bad[0]].tolist()} in row {bad[0]}; "
            "pass pre-softmax scores as logits= instead"
        )
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_ATOL)
    if bad.size:
        raise ValueError(
            f"each row of probs must sum to 1 (±{PROB_SUM_ATOL}), got {sums[bad[0]]:.6g} in row "
            f"{bad[0]}; pass pre-softmax scores as logits= instead"
        )
    return probs


def _check_logits(x: Any, name: str = "logits") -> np.ndarray:
    logits = _check_scores(x, name)
    if (
        logits.shape[0] > 1
        and ((logits >= 0) & (logits <= 1)).all()
        and np.allclose(logits.sum(axis=1), 1.0, rtol=0.0, atol=PROB_SUM_ATOL)
    ):
        warnings.warn(
            f"{name}: every row lies in [0, 1] and sums to 1, like probabilities; these "
            "are read as pre-softmax logits (pass probabilities as probs=)",
            stacklevel=3,
        )
    return logits


def _check_labels(x: Any, n_samples: int, n_classes: int, name: str = "labels") -> np.ndarray:
    return class_labels(_to_numpy(x, name), n_classes, name=name, n_samples=n_samples)


def _check_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _resolve(probs: Any, logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(probs [N, C] float64, labels [N] int64)`` from exactly one score kind."""
    if (probs is None) == (logits is None):
        given = "both" if probs is not None else "neither"
        raise ValueError(f"pass exactly one of probs= or logits=, got {given}")
    if probs is not None:
        p = _check_probs(probs)
    else:
        p = np.exp(_log_softmax(_check_logits(logits)))
    return p, _check_labels(labels, p.shape[0], p.shape[1])


# --------------------------------------------------------------------------- binning


def _bin_statistics(
    probs: np.ndarray, labels: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin ``(counts, accuracy, mean confidence)``, each ``[n_bins]`` (0 in empty bins).

    Bin of a confidence = number of inner edges ``j/n_bins`` (j = 1..n_bins−1) at or below it,
    i.e. ``[j/n_bins, (j+1)/n_bins)`` with 1.0 in the last bin, matching D&D's float comparison
    ``conf < (j+1)/10`` exactly, also at edges such as 0.5.
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    inner_edges = np.arange(1, n_bins) / n_bins
    bins = np.searchsorted(inner_edges, confidence, side="right")
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    safe = np.maximum(counts, 1.0)
    acc = np.bincount(bins, weights=correct, minlength=n_bins) / safe
    conf = np.bincount(bins, weights=confidence, minlength=n_bins) / safe
    return counts, acc, conf


# --------------------------------------------------------------------------- metrics


def expected_calibration_error(
    labels: Any, logits: Any = None, *, probs: Any = None, n_bins: int = 10
) -> float:
    """Expected calibration error, a fraction in ``[0, 1]`` (Guo et al. 2017; Desai & Durrett 2020).

    ``ECE = Σ_k (n_k / N) · |acc_k − conf_k|`` over the ``n_bins`` equal-width confidence bins
    ``[k/n_bins, (k+1)/n_bins)`` (a confidence of exactly 1.0 goes to the last bin), where
    confidence is the max softmax probability, ``acc_k`` the accuracy and ``conf_k`` the mean
    confidence of the ``n_k`` samples in bin ``k``. Vectorised with ``np.bincount``: O(N·C).

    Args:
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        probs: ``[N, C]`` class probabilities (rows sum to 1). Give this or ``logits``.
        logits: ``[N, C]`` pre-softmax scores. Give this or ``probs``.
        n_bins: number of equal-width bins (D&D: 10).

    Returns:
        ECE as a fraction (multiply by 100 for the papers' tables).

    Raises:
        ValueError: if not exactly one of ``probs``/``logits`` is given, or an input has the
            wrong shape, range or dtype.

    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])
    >>> round(expected_calibration_error(labels=np.array([0, 1, 1, 0]), probs=probs), 6)
    0.3
    >>> round(expected_calibration_error(np.array([0, 1]), np.array([[2.0, 0.0], [0.0, 2.0]])), 4)
    0.1192
    """
    p, y = _resolve(probs, logits, labels)
    counts, acc, conf = _bin_statistics(p, y, _check_n_bins(n_bins))
    return float(np.sum(counts * np.abs(acc - conf)) / counts.sum())


def maximum_calibration_error(
    labels: Any, logits: Any = None, *, probs: Any = None, n_bins: int = 10
) -> float:
    """Maximum calibration error (Guo et al. 2017): ``max_k |acc_k − conf_k|``, non-empty bins.

    Binning, shapes and arguments as in :func:`expected_calibration_error`; returns a fraction.
    """
    p, y = _resolve(probs, logits, labels)
    counts, acc, conf = _bin_statistics(p, y, _check_n_bins(n_bins))
    return float(np.max(np.abs(acc - conf)[counts > 0]))


def accuracy(labels: Any, logits: Any = None, *, probs: Any = None) -> float:
    """Fraction of samples whose argmax class (first index on ties) equals the label.

    Args:
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        probs: ``[N, C]`` class probabilities. Give this or ``logits``.
        logits: ``[N, C]`` pre-softmax scores. Give this or ``probs``.
    """
    p, y = _resolve(probs, logits, labels)
    return float(np.mean(p.argmax(axis=1) == y))


def negative_log_likelihood(labels: Any, logits: Any = None, *, probs: Any = None) -> float:
    """Mean negative log-likelihood ``−(1/N) Σ_i ln p_i[y_i]`` in nats (natural log).

    From ``logits`` it is computed exactly with a stable log-softmax (this equals
    ``torch.nn.functional.cross_entropy``); from ``probs`` the gold probability is clipped to
    at least 1e-12, so a zero probability gives ≈ 27.6 instead of infinity.

    Args:
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        probs: ``[N, C]`` class probabilities. Give this or ``logits``.
        logits: ``[N, C]`` pre-softmax scores. Give this or ``probs``.
    """
    if logits is not None and probs is None:
        z = _check_logits(logits)
        y = _check_labels(labels, z.shape[0], z.shape[1])
        return float(-np.mean(np.take_along_axis(_log_softmax(z), y[:, None], axis=1)))
    p, y = _resolve(probs, logits, labels)
    gold = np.take_along_axis(p, y[:, None], axis=1)
    return float(-np.mean(np.log(np.maximum(gold, _PROB_FLOOR))))


def brier_score(labels: Any, logits: Any = None, *, probs: Any = None) -> float:
    """Multi-class Brier score (Brier 1950): ``(1/N) Σ_i Σ_c (p_ic − y_ic)²``, in ``[0, 2]``.

    ``y_ic`` is the one-hot gold label. This is the sum over classes, averaged over samples
    (not divided by C, and not the binary positive-class variant of scikit-learn).

    Args:
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        probs: ``[N, C]`` class probabilities. Give this or ``logits``.
        logits: ``[N, C]`` pre-softmax scores. Give this or ``probs``.
    """
    p, y = _resolve(probs, logits, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


# --------------------------------------------------------------------------- temperature
TEMPERATURE_GRID = np.arange(1, 1001) / 100.0
"""The grid search's temperatures: 0.01, 0.02, …, 10.00 (Desai & Durrett 2020)."""
GRID_MIN, GRID_MAX = float(TEMPERATURE_GRID[0]), float(TEMPERATURE_GRID[-1])


def _grid_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    # NLL(T) = mean_i (m_i − z_iy)/T + mean_i ln Σ_c exp((z_ic − m_i)/T), m_i = max_c z_ic;
    # the shift by m_i does not depend on T, so it is computed once.
    temperatures = TEMPERATURE_GRID
    row_max = logits.max(axis=1, keepdims=True)
    shifted = logits - row_max
    gold_gap = float(np.mean(row_max[:, 0] - np.take_along_axis(logits, labels[:, None], 1)[:, 0]))
    chunk = max(1, _GRID_ELEMENTS // logits.size)
    nll = np.empty_like(temperatures)
    for start in range(0, temperatures.size, chunk):
        inv_t = 1.0 / temperatures[start : start + chunk, None, None]
        log_norm = np.log(np.exp(shifted[None] * inv_t).sum(axis=2)).mean(axis=1)
        nll[start : start + chunk] = gold_gap * inv_t[:, 0, 0] + log_norm
    return float(temperatures[int(np.argmin(nll))])  # first minimum, as D&D's strict "<"


def _lbfgs_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    import torch

    z = torch.from_numpy(logits)
    y = torch.from_numpy(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t],
        lr=1.0,
        max_iter=200,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fit_temperature(
    dev_labels: Any, dev_logits: Any, *, method: Literal["grid", "lbfgs"] = "grid"
) -> float:
    """Temperature ``T`` minimising the dev NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Args:
        dev_logits: ``[N, C]`` pre-softmax dev-set scores (probabilities cannot be rescaled).
        dev_labels: ``[N]`` integer dev labels in ``[0, C)``.
        method: ``"grid"`` — Desai & Durrett (2020): every T in 0.01, 0.02, …, 10.00, the
            smallest T with the lowest NLL wins (vectorised over chunks of T); ``"lbfgs"`` —
            torch L-BFGS on ``log T`` from T = 1 (continuous, unbounded).

    Returns:
        The temperature, > 0. ``T > 1`` softens over-confident predictions. A grid T at either
        end (0.01 or 10.00) is logged as a warning: the dev NLL kept falling beyond the grid,
        e.g. a dev set the model classifies perfectly (T → 0: hard 0/1 probabilities) or a
        model near chance (T → ∞).
    """
    z = _check_logits(dev_logits, "dev_logits")
    y = _check_labels(dev_labels, z.shape[0], z.shape[1], name="dev_labels")
    if method == "grid":
        t = _grid_temperature(z, y)
        if t in (GRID_MIN, GRID_MAX):
            accuracy = float(np.mean(z.argmax(axis=1) == y))
            why = (
                "probabilities are nearly 0/1; a larger dev set, with rows the model gets "
                "wrong, calibrates better"
                if t == GRID_MIN
                else "probabilities are nearly uniform; the model barely separates the "
                "classes: train longer or on more data"
            )
            logging.getLogger("tdmixup.evaluation.calibration").warning(
                "temperature %.2f is at the end of the grid (%.2f to %.2f): the dev NLL still "
                "fell beyond it (dev accuracy %.1f %% on %d rows), so the calibrated %s",
                t, GRID_MIN, GRID_MAX, 100 * accuracy, len(y), why,
            )  # fmt: skip
        return t
    if method == "lbfgs":
        return _lbfgs_temperature(z, y)
    raise ValueError(f"method must be 'grid' or 'lbfgs', got {method!r}")


def calibration_report(
    labels: Any, logits: Any, *, temperature: float | None = None
) -> dict[str, float]:
    """All calibration metrics of one prediction set, as fractions.

    Args:
        logits: ``[N, C]`` pre-softmax scores.
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        temperature: if given (e.g. from :func:`fit_temperature` on dev), also report the
            metrics of ``softmax(logits / temperature)``.

    Returns:
        A flat dict (ready for JSON/CSV) with ``accuracy``, ``ece``, ``mce``, ``nll``,
        ``brier`` (10-bin D&D convention). With ``temperature``, also ``temperature`` and
        ``ece_scaled``, ``mce_scaled``, ``nll_scaled``, ``brier_scaled``; accuracy is omitted
        there because dividing by ``T > 0`` keeps every argmax.
    """
    z = _check_scores(logits, "logits")
    y = _check_labels(labels, z.shape[0], z.shape[1])
    report = {"accuracy": accuracy(labels=y, logits=z), **_scored(z, y, suffix="")}
    if temperature is not None:
        t = _check_temperature(temperature)
        report["temperature"] = t
        report.update(_scored(z / t, y, suffix="_scaled"))
    return report


def _scored(z: np.ndarray, y: np.ndarray, suffix: str) -> dict[str, float]:
    return {
        f"ece{suffix}": expected_calibration_error(labels=y, logits=z),
        f"mce{suffix}": maximum_calibration_error(labels=y, logits=z),
        f"nll{suffix}": negative_log_likelihood(labels=y, logits=z),
        f"brier{suffix}": brier_score(labels=y, logits=z),
    }


# --------------------------------------------------------------------------- plot


def reliability_diagram(
    labels: Any,
    logits: Any = None,
    *,
    path: str | os.PathLike[str],
    probs: Any = None,
    n_bins: int = 10,
    title: str = "Reliability diagram",
    temperature: float | None = None,
) -> Path:
    """Write a reliability diagram PNG (Guo et al. 2017, Fig. 1; D&D binning).

    Top panel: accuracy per confidence bin as bars against the diagonal (perfect
    calibration), the gap between each bar and the bin's mean confidence shaded, ECE (%) in
    the title. Bottom panel: number of samples per bin. With ``temperature`` (needs
    ``logits``), the accuracy of ``softmax(logits / temperature)`` per bin is overlaid as a
    line at each bin's mean confidence, and its ECE added to the title. The file is written
    to a temporary name in the same folder and moved into place with ``os.replace``.

    Args:
        labels: ``[N]`` integer gold labels in ``[0, C)``.
        path: destination ``.png`` (parent folders are created).
        probs: ``[N, C]`` class probabilities. Give this or ``logits``.
        logits: ``[N, C]`` pre-softmax scores. Give this or ``probs``.
        n_bins: number of equal-width bins.
        title: first line of the figure title.
        temperature: optional fitted temperature to overlay (requires ``logits``).

    Returns:
        The written path.
    """
    n_bins = _check_n_bins(n_bins)
    p, y = _resolve(probs, logits, labels)
    curves = [("uncalibrated", p)]
    if temperature is not None:
        if logits is None:
            raise ValueError(
                "temperature= needs logits=, got probs= (probabilities cannot be rescaled)"
            )
        t = _check_temperature(temperature)
        curves.append((f"T = {t:.2f}", np.exp(_log_softmax(_check_scores(logits, "logits") / t))))
    stats = [(name, *_bin_statistics(q, y, n_bins)) for name, q in curves]
    fig = _draw(stats, n_bins, title)
    return _save_atomically(fig, Path(path))


_BinStats = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def _draw(stats: list[_BinStats], n_bins: int, title: str) -> Any:
    from matplotlib.figure import Figure  # lazy: plotting is optional at import time

    fig = Figure(figsize=(5, 6), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = 1.0 / n_bins
    left = np.arange(n_bins) * width
    _, counts, acc, conf = stats[0]
    full = counts > 0
    top.bar(
        left[full],
        acc[full],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    top.bar(
        left[full],
        (conf - acc)[full],
        bottom=acc[full],
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        hatch="//",
        edgecolor="tab:red",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    eces = [f"ECE {100 * np.sum(c * np.abs(a - f)) / c.sum():.2f}%" for _, c, a, f in stats]
    for name, counts_s, acc_s, conf_s in stats[1:]:
        mask = counts_s > 0
        top.plot(conf_s[mask], acc_s[mask], "o-", color="tab:green", label=f"accuracy, {name}")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.legend(loc="upper left", fontsize="small")
    suffix = "" if len(stats) == 1 else f" → {eces[1]} ({stats[1][0]})"
    top.set_title(f"{title}\n{eces[0]}{suffix}", fontsize="medium")
    bottom.bar(left, counts, width=width, align="edge", color="tab:gray", edgecolor="black")
    bottom.set(xlabel="confidence (max softmax probability)", ylabel="count")
    fig.tight_layout()
    return fig


def _save_atomically(fig: Any, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
