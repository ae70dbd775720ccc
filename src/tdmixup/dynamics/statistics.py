"""Per-sample statistics of logits over epochs, on plain arrays (numpy only).

The functions take ``[E, N, C]`` pre-softmax logits (E epochs, N samples, C ≥ 2 classes) and
``[N]`` gold labels (:func:`confidence` and :func:`variability` the ``[E, N]`` gold
probabilities), from a :class:`tdmixup.dynamics.table.TrainingDynamics` or a training loop of one's
own, and return one value per sample. Statistics follow Swayamdipta et al. (2020) and the TDMixUp
paper, section 2.1, with ``p_e = softmax(z_e)[gold]`` the gold-class probability at epoch ``e``
of ``E``:

* confidence  ``μ = (1/E) Σ_e p_e`` (paper Eq. 1)
* variability ``σ = sqrt((1/E) Σ_e (p_e − μ)²)`` — population std (paper Eq. 2)
* correctness ``(1/E) Σ_e [argmax z_e = gold]`` — a fraction (Cartography stores the count)
* forgetting events: number of ``e`` with a correct prediction at ``e − 1`` and a wrong one at
  ``e`` (Toneva et al. 2019). Cartography reports 1000 for never-learnt samples; here they
  count 0 and are recognised by ``correctness == 0``.
* AUM, the mean over epochs of gold logit − largest other logit (Pleiss et al. 2020), from
  :func:`margins` and :func:`area_under_margin` (the AUM stage, :mod:`tdmixup.dynamics.aum`, uses
  the same two functions).

:func:`per_sample_statistics` computes them all at once (one softmax, one argmax);
:func:`tdmixup.dynamics.table.compute_statistics` puts its columns in a table indexed by sample id.
"""

from __future__ import annotations

import numpy as np

from tdmixup.core.arrays import class_labels


def _check_logits_gold(logits: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits)
    if z.ndim != 3 or z.shape[2] < 2:
        raise ValueError(f"logits: expected shape [E, N, C] with C >= 2, got {z.shape}")
    if np.shape(gold) != (z.shape[1],):
        raise ValueError(
            f"gold: {np.shape(gold)} labels for {z.shape[1]} samples "
            f"in logits [E, N, C] = {z.shape}"
        )
    return z, class_labels(gold, z.shape[2], name="gold")


def _correct(logits: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """``[E, N]`` bool: argmax (first maximum on ties) equals gold."""
    z, labels = _check_logits_gold(logits, gold)
    return z.argmax(axis=2) == labels[None, :]


def _forgotten(hits: np.ndarray) -> np.ndarray:
    """``[E, N]`` bool hits → ``[N]`` int64 count of correct → incorrect transitions."""
    return (hits[:-1] & ~hits[1:]).sum(axis=0).astype(np.int64)


def gold_probabilities(logits: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Softmax probability of the gold class at every epoch: ``p_e = softmax(z_e)[gold]``.

    Computed as ``exp(z_gold − m) / Σ_k exp(z_k − m)`` with ``m = max_k z_k``, in float64, so
    large logits do not overflow.

    Args:
        logits: ``[E, N, C]`` pre-softmax logits.
        gold: ``[N]`` gold class indices.

    Returns:
        ``[E, N]`` float64 probabilities in ``[0, 1]``.

    >>> gold_probabilities(np.array([[[0.0, 0.0]], [[1000.0, 0.0]]]), np.array([0]))
    array([[0.5],
           [1. ]])
    """
    z, labels = _check_logits_gold(logits, gold)
    planes = np.moveaxis(z, 2, 0).astype(
        np.float64, order="C"
    )  # [C, E, N]: reductions run over planes
    planes -= planes.max(axis=0)
    gold_logit = np.take_along_axis(planes, labels[None, None, :], axis=0)[0]
    np.exp(planes, out=planes)
    return np.exp(gold_logit) / planes.sum(axis=0)


def confidence(gold_probs: np.ndarray) -> np.ndarray:
    """Mean gold probability over epochs, ``μ = (1/E) Σ_e p_e`` (paper Eq. 1). ``[E, N]`` → ``[N]``.

    >>> confidence(np.array([[0.2, 1.0], [0.6, 1.0]]))
    array([0.4, 1. ])
    """
    return np.asarray(gold_probs, dtype=np.float64).mean(axis=0)


def variability(gold_probs: np.ndarray) -> np.ndarray:
    """Population std of the gold probability over epochs, ``sqrt((1/E) Σ_e (p_e − μ)²)``
    (paper Eq. 2; divides by ``E``, not ``E − 1``). ``[E, N]`` → ``[N]``.

    >>> variability(np.array([[0.2, 1.0], [0.6, 1.0]]))
    array([0.2, 0. ])
    """
    return np.asarray(gold_probs, dtype=np.float64).std(axis=0)


def correctness(logits: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Fraction of epochs whose argmax is gold: ``[E, N, C]``, ``[N]`` → ``[N]`` in ``[0, 1]``.

    On tied logits the first maximal class is the prediction (``numpy.argmax``).

    >>> correctness(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]), np.array([0]))
    array([0.5])
    """
    return _correct(logits, gold).mean(axis=0)


def forgetting_events(logits: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Number of correct → incorrect transitions between consecutive epochs (Toneva et al. 2019).

    ``Σ_{e=1}^{E−1} [correct_{e−1} ∧ ¬correct_e]``; ``[E, N, C]``, ``[N]`` → ``[N]`` int64.

    >>> z = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    >>> forgetting_events(z, np.array([0]))
    array([2])
    """
    return _forgotten(_correct(logits, gold))


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Margin of each sample at each epoch: gold logit − largest other logit (paper Eq. 3).

    Args:
        logits: ``[E, N, C]`` pre-softmax logits (E epochs, N samples, C ≥ 2 classes).
        labels: ``[N]`` integer labels as trained, in ``[0, C)``.

    Returns:
        ``[E, N]`` float64 margins (positive = the gold class wins).

    >>> margins(np.array([[[2.0, 0.5, 1.0]]]), np.array([0]))
    array([[1.]])
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3 or logits.shape[2] < 2:
        raise ValueError(f"logits: expected shape [E, N, C] with C >= 2, got {logits.shape}")
    labels = class_labels(labels, logits.shape[2])
    if labels.shape[0] != logits.shape[1]:
        raise ValueError(
            f"labels: {labels.shape[0]} labels for {logits.shape[1]} samples in logits"
        )
    gold = np.take_along_axis(logits, labels[None, :, None], axis=2)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, labels[None, :, None], -np.inf, axis=2)
    return gold - others.max(axis=2)


def area_under_margin(
    logits: np.ndarray, labels: np.ndarray, *, skip_epochs: int = 0
) -> np.ndarray:
    """AUM = mean margin over epochs (paper Eq. 4). ``[E, N, C]``, ``[N]`` → ``[N]``.

    Args:
        logits: ``[E, N, C]`` logits per epoch.
        labels: ``[N]`` labels as trained.
        skip_epochs: average over epochs ``skip_epochs … E-1`` only (Pleiss et al.'s
            paper-replication runner skips epoch 0, when a fresh head's margins say little).

    >>> area_under_margin(np.array([[[2.0, 0.0]], [[0.0, 1.0]]]), np.array([0]))
    array([0.5])
    >>> area_under_margin(np.array([[[2.0, 0.0]], [[0.0, 1.0]]]), np.array([0]), skip_epochs=1)
    array([-1.])
    """
    epochs = np.shape(logits)[0] if np.ndim(logits) == 3 else 0
    if int(skip_epochs) != skip_epochs or not 0 <= skip_epochs < max(epochs, 1):
        raise ValueError(
            f"skip_epochs: expected an integer in [0, {epochs}) for {epochs} epoch(s) of logits, "
            f"got {skip_epochs}; lower --aum-skip-epochs or train more --aum-epochs"
        )
    return margins(logits, labels)[int(skip_epochs) :].mean(axis=0)


def per_sample_statistics(logits: np.ndarray, gold: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-sample statistic of ``[E, N, C]`` logits and ``[N]`` gold labels at once.

    Returns:
        ``[N]`` arrays by name: ``gold`` (int64), ``confidence``, ``variability``,
        ``correctness`` (fraction), ``forgetting_events`` (int64), ``aum`` and ``prediction``
        (int64 argmax at the last epoch), each equal to its own function's result.

    >>> stats = per_sample_statistics(np.array([[[2.0, 0.0]], [[0.0, 1.0]]]), np.array([0]))
    >>> stats["correctness"], stats["forgetting_events"], stats["aum"], stats["prediction"]
    (array([0.5]), array([1]), array([0.5]), array([1]))
    """
    z, labels = _check_logits_gold(logits, gold)
    probs = gold_probabilities(z, labels)
    predictions = z.argmax(axis=2)
    hits = predictions == labels[None, :]
    return {
        "gold": labels,
        "confidence": confidence(probs),
        "variability": variability(probs),
        "correctness": hits.mean(axis=0),
        "forgetting_events": _forgotten(hits),
        "aum": area_under_margin(z, labels),
        "prediction": predictions[-1].astype(np.int64),
    }
