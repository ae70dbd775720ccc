"""MixUp guided by AUM and saliency (Park & Caragea, ACL 2022): the strategy ``aum_saliency``.

"On the Calibration of Pre-trained Language Models using Mixup Guided by Area Under the Margin
and Saliency", the authors' follow-up to TDMixUp, run on the same stages as ``tdmixup run``:

1. stage 1 (``full``): plain fine-tuning that records each training sample's logits per epoch;
2. stage ``aum`` → ``aum_saliency_split/``: AUM per sample from those logits (plain AUM, no
   threshold samples: mean over epochs of gold logit − largest other logit); the training set
   is split at the ``aum_saliency_quantile`` of the AUMs (default 0.5, the median) into a
   *high* half (AUM ≥ threshold: easy-to-learn) and a *low* half (hard-to-learn / ambiguous).
   Each sample's *recorded saliency* is ``|∂CE/∂z|`` at its last recorded epoch;
3. stage ``tdmixup`` → ``stage4_aum_saliency/``: each step takes one batch from each half.

**Saliency.** For one sample with logits ``z`` (``[C]``; ``[K]`` endings for multiple choice)
and label ``y``, ``CE = −log softmax(z)_y`` and ``∂CE/∂z = softmax(z) − onehot(y)``, so the
saliency ``|∂CE/∂z|`` is analytic (:func:`logit_saliency`; tests check it against autograd): it
costs no extra backward pass. The *current* saliency of a batch comes from the logits of this
step's forward pass (train mode, with the hard labels, as the authors' code back-propagates
its unsmoothed CE).

**Step** (:func:`aum_saliency_loss`). For each row ``i`` of one half's batch, among the real rows
of the other half's batch: the most similar partner ``s(i)`` and the most dissimilar ``d(i)``
by the cosine between row ``i``'s recorded saliency and the partners' current saliency (ties:
the first row). With ``λ ~ Beta(α, α)`` (one per step; one per row with ``lambda_mode=sample``)
the logits and (label-smoothed) one-hot targets are mixed: ``z̃ = λ·z_i + (1−λ)·z_s(i)``. Per half,
with ``a, b, c`` = ``aum_saliency_{ce,similar,dissimilar}_weight`` (0.8, 0.1, 0.1) and ``w`` the
loop's row weights (summing to 1 per batch)::

    L_half = a·Σ_i w_i·CE(z_i, y_i) + b·Σ_i w_i·ℓ(z̃_i^sim, ỹ_i^sim) + c·Σ_i w_i·ℓ(z̃_i^dis, ỹ_i^dis)
    L = (L_high + L_low) / 2

so with the default weights the loss is on the scale of the plain CE.

**Where this differs from the authors' code** (seoyeon-p/MixUp-Guided-by-AUM-and-Saliency-Map,
``train.py``; see ../shared/REFERENCE.md), and why:

* Two partner-label assignments there overwrite the whole label tensor with one row
  (``similar_label1 = label2[idx]``, ``dissimilar_label2 = label1[idx]``), so every row of
  those mixes gets the label of the last row's partner. Here each row gets its own partner's.
* Their mixed CE sums over the batch and averages over classes; here it is a per-sample mean
  like the CE terms, so 0.8/0.1/0.1 weigh samples, not a batch-size-dependent mixture.
* Their CE terms are back-propagated once on their own (to read the logit gradients) and again
  inside the total loss, i.e. counted 1.4× and 0.4× more than the formula says; here the
  saliency is analytic and the loss is back-propagated once.
* Their optimizer is re-created every epoch, no LR schedule is used and the best epoch is
  picked by dev loss; here the loop is tdmixup's (one AdamW, linear schedule, last epoch).
* Their loaders are zipped, so an epoch ends with the smaller half; here an epoch is one pass
  over the larger half, the other is cycled (the median split makes them equal up to ties).
* Their AUM and recorded saliency come from the training pass (the saliency of the last time a
  sample was seen, scaled by 1/B from the batch-mean CE; cosine ignores that scale). Here they
  come from stage 1's dynamics table: ``--dynamics-mode train_pass`` gives exactly that, the
  default ``epoch_end`` an inference pass after each epoch (dropout off).
* Their samples with AUM equal to the threshold go to the high half (``aum < th`` is low): same.
* Their label smoothing (``--ls``) smooths only the targets of the mixes, with ε/(C−1) per
  wrong class; here ``--label-smoothing`` smooths every target (see :mod:`tdmixup.strategies.step`).
* Mixing is on the output logits as in the paper and code (for a linear head it equals mixing
  the [CLS] features); ``mix_at`` does not apply to this strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from tdmixup.core.config import MixupConfig
from tdmixup.model.classifier import Classifier
from tdmixup.strategies.mixing import (
    Batch,
    StepOutput,
    forward_unmixed,
    hard_cross_entropy,
    mix_tensors,
    num_choices_of,
    one_hot,
    sample_lambda,
    smooth_targets,
    soft_cross_entropy,
    weighted_sum,
)


# --- pure functions --------------------------------------------------------------------------
def logit_saliency(logits: Tensor, labels: Tensor) -> Tensor:
    """``|∂CE/∂z| = |softmax(z) − onehot(y)|`` per sample: ``[B, C]`` logits, ``[B]`` labels
    → ``[B, C]``.

    Computed in float64, the gold entry as ``Σ_{k≠y} p_k`` (= 1 − p_y without cancellation), so a
    confident sample keeps the direction of its tiny saliency. Returned in the logits' dtype.

    >>> logit_saliency(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    tensor([[0.5000, 0.5000]])
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logit_saliency: expected logits [B, C] and labels [B], got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    saliency = torch.softmax(logits.detach().double(), dim=-1)
    gold = labels.long().view(-1, 1).to(saliency.device)
    saliency = saliency.scatter(1, gold, 0.0)
    saliency = saliency.scatter(1, gold, saliency.sum(dim=1, keepdim=True))
    return saliency.to(logits.dtype)


def saliency_cosine(recorded: Tensor, current: Tensor) -> Tensor:
    """Cosine similarity of every recorded saliency ``[B, C]`` with every current one ``[M, C]`` →
    ``[B, M]`` (float64). Rows are first divided by their largest entry, so saliencies of ~1e-30
    still have a direction; an all-zero row has cosine 0 with everything."""

    def unit(x: Tensor) -> Tensor:
        x = x.double()
        return F.normalize(
            x / x.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny), dim=-1
        )

    return unit(recorded) @ unit(current).to(recorded.device).T


def saliency_partners(recorded: Tensor, current: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Most similar and most dissimilar partner of each row among the ``valid`` candidates.

    Args:
        recorded: ``[B, C]`` recorded saliency of this half's rows.
        current: ``[M, C]`` current saliency of the other half's rows.
        valid: ``[M]`` bool, False for weight-0 dummy rows (never chosen).

    Returns:
        ``(similar [B], dissimilar [B])`` row indices into ``current`` (the first row on ties;
        all 0 when no candidate is valid).

    >>> saliency_partners(torch.tensor([[1.0, 0.0]]),
    ...                   torch.tensor([[0.0, 1.0], [1.0, 0.1], [1.0, 0.0]]),
    ...                   torch.tensor([True, True, False]))
    (tensor([1]), tensor([0]))
    """
    sim = saliency_cosine(recorded, current)
    valid = valid.to(sim.device).view(1, -1)
    # with no valid candidate every row is ±inf and argmax/argmin give row 0 (no host check)
    return sim.masked_fill(~valid, -np.inf).argmax(dim=1), sim.masked_fill(~valid, np.inf).argmin(
        dim=1
    )


@dataclass
class Half:
    """One half's batch as the loss sees it: ``logits [B, C]`` (with grad), ``labels [B]``,
    ``weight [B]`` (the loop's row weights, 0 for dummies) and ``recorded`` saliency ``[B, C]``."""

    logits: Tensor
    labels: Tensor
    weight: Tensor
    recorded: Tensor


def aum_saliency_loss(
    high: Half, low: Half, lam_high: Tensor | float, lam_low: Tensor | float, config: MixupConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """``(L_high + L_low) / 2`` of the module docstring, and the partners chosen.

    Args:
        high, low: the two halves' batches (:class:`Half`).
        lam_high, lam_low: λ of each half's mixes, a scalar or one per row.
        config: label smoothing and the three loss weights.

    Returns:
        ``(loss, partners)`` with ``partners`` = ``{"high_similar", "high_dissimilar",
        "low_similar", "low_dissimilar"}``: for each row of that half, a row index into the other
        half.
    """
    c = high.logits.shape[-1]
    if low.logits.shape[-1] != c:
        raise ValueError(f"the two halves have {c} and {low.logits.shape[-1]} classes (or endings)")
    eps = config.label_smoothing
    partners: dict[str, Tensor] = {}

    def half_loss(name: str, me: Half, other: Half, lam: Tensor | float) -> Tensor:
        valid = other.weight > 0
        current = logit_saliency(other.logits, other.labels)
        similar, dissimilar = saliency_partners(me.recorded, current, valid)
        partners[f"{name}_similar"], partners[f"{name}_dissimilar"] = similar, dissimilar
        mix_weight = me.weight * valid.any().to(me.weight.dtype)  # on the device, no sync
        mine = smooth_targets(one_hot(me.labels, c).to(me.logits.dtype), eps)
        theirs = smooth_targets(one_hot(other.labels, c).to(other.logits.dtype), eps)

        def mixed(index: Tensor) -> Tensor:
            index = index.to(other.logits.device)
            z = mix_tensors(me.logits, other.logits[index], lam)
            return weighted_sum(
                soft_cross_entropy(z, mix_tensors(mine, theirs[index], lam)), mix_weight
            )

        ce = weighted_sum(hard_cross_entropy(me.logits, me.labels, eps), me.weight)
        return (
            config.aum_saliency_ce_weight * ce
            + config.aum_saliency_similar_weight * mixed(similar)
            + config.aum_saliency_dissimilar_weight * mixed(dissimilar)
        )

    loss = (half_loss("high", high, low, lam_high) + half_loss("low", low, high, lam_low)) / 2
    return loss, partners


def step_aum_saliency(
    model: Classifier,
    batches: list[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
    """One training step of ``aum_saliency``: ``batches = (high, low)``, each with a ``saliency``
    column ``[B, C]`` (added by :class:`SaliencyColumn`); λ drawn as one per step (or per row)."""
    high, low = batches
    for name, batch in (("high", high), ("low", low)):
        if "saliency" not in batch:
            raise ValueError(
                f"aum_saliency: the {name} batch has no 'saliency' column; train it through "
                "`tdmixup run --strategy aum_saliency` (or pass batch_columns=SaliencyColumn(...))"
            )
    if num_choices_of(high) != num_choices_of(low):
        raise ValueError(
            "high and low batches differ in number of choices: "
            f"{num_choices_of(high)} vs {num_choices_of(low)}"
        )
    (_, z_high), (_, z_low) = forward_unmixed(model, high), forward_unmixed(model, low)
    if config.lambda_mode == "batch":
        lam_high = lam_low = sample_lambda(config.alpha, generator=generator)
    else:
        lam_high = sample_lambda(config.alpha, len(z_high), generator=generator)
        lam_low = sample_lambda(config.alpha, len(z_low), generator=generator)
    halves = [
        Half(z, b["labels"], b["weight"], b["saliency"]) for z, b in ((z_high, high), (z_low, low))
    ]
    loss, _ = aum_saliency_loss(
        halves[0], halves[1], lam_high.to(z_high.device), lam_low.to(z_low.device), config
    )
    lam = float(torch.cat([lam_high.flatten(), lam_low.flatten()]).mean())
    return StepOutput(
        loss,
        torch.cat([z_high, z_low]).detach(),
        torch.cat([high["sample_id"], low["sample_id"]]),
        lam,
    )


@dataclass(frozen=True)
class AUMSaliencySplit:
    """The AUM split of a training set and each sample's recorded saliency.

    Attributes:
        sample_ids: ``[N]``; gold ``[N]``; aum ``[N]`` float64 (logit units).
        saliency: ``[N, C]`` ``|∂CE/∂z|`` at the last recorded epoch.
        high: ``[N]`` bool, AUM ≥ threshold (easy-to-learn half).
        threshold: the AUM at ``quantile`` (``np.quantile``, linear interpolation).
    """

    sample_ids: np.ndarray
    gold: np.ndarray
    aum: np.ndarray
    saliency: np.ndarray
    high: np.ndarray
    threshold: float
    quantile: float


def split_by_aum(
    sample_ids: np.ndarray, gold: np.ndarray, logits: np.ndarray, *, quantile: float = 0.5
) -> AUMSaliencySplit:
    """AUM per sample from per-epoch logits ``[E, N, C]``, the split at its ``quantile``, and the
    saliency of the last epoch's logits.

    >>> z = np.array([[[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]]])
    >>> s = split_by_aum(np.arange(4), np.array([0, 0, 0, 1]), z)
    >>> s.aum.tolist(), s.threshold, s.high.tolist()
    ([3.0, -1.0, 1.0, 2.0], 1.5, [True, False, False, True])
    """
    from tdmixup.dynamics.statistics import area_under_margin

    if not 0.0 < quantile < 1.0:
        raise ValueError(f"--aum-saliency-quantile must be in (0, 1), got {quantile}")
    aum = area_under_margin(logits, gold)
    threshold = float(np.quantile(aum, quantile))
    last = torch.from_numpy(np.asarray(logits[-1], dtype=np.float64))
    saliency = logit_saliency(last, torch.from_numpy(np.asarray(gold, dtype=np.int64))).numpy()
    return AUMSaliencySplit(
        np.asarray(sample_ids, dtype=np.int64),
        np.asarray(gold, dtype=np.int64),
        aum,
        saliency,
        aum >= threshold,
        threshold,
        quantile,
    )


class SaliencyColumn:
    """``batch -> {"saliency": [B, C] float32}``: each row's recorded saliency, looked up by
    ``sample_id``."""

    def __init__(self, sample_ids: np.ndarray, saliency: np.ndarray) -> None:
        order = np.argsort(sample_ids)
        self.ids = np.asarray(sample_ids, dtype=np.int64)[order]
        self.values = torch.from_numpy(np.asarray(saliency, dtype=np.float32)[order])

    def __call__(self, batch: Batch) -> dict[str, Tensor]:
        ids = batch["sample_id"].cpu().numpy()
        pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        missing = ids[self.ids[pos] != ids] if len(self.ids) else ids
        if len(missing):
            raise ValueError(
                f"no recorded saliency for sample ids {missing[:5].tolist()}: "
                "was the split made from another training set?"
            )
        return {"saliency": self.values[pos]}


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sample_ids [N], high [N] bool, saliency [N, C])`` from a ``split.parquet``."""
    frame = pd.read_parquet(path)
    columns = sorted(
        (c for c in frame.columns if c.startswith("saliency_")), key=lambda c: int(c.split("_")[1])
    )
    return (
        frame["sample_id"].to_numpy(np.int64),
        frame["high"].to_numpy(bool),
        frame[columns].to_numpy(np.float32),
    )
