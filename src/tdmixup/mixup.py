"""MixUp primitives and one training step per strategy (:func:`compute_step`).

A batch is a dict of tensors: ``input_ids``, ``attention_mask``, optional ``token_type_ids``
(``[B, L]`` for pair tasks, ``[B, K, L]`` for multiple choice), ``labels`` ``[B]``,
``sample_id`` ``[B]`` and ``weight`` ``[B]``. The loop scales ``weight`` so that
``(weight * per_sample_loss).sum()`` is the loss of these rows; rows of weight 0 are padding
dummies and contribute nothing (they are never chosen as a MixUp partner of a real row).

Strategies (``MixupConfig.strategy``), per step, with ``ℓ`` the per-sample (soft) cross entropy:

* ``none`` — ``Σ w·CE``.
* ``mixup`` — Zhang et al. (2018) in BERT's input space, i.e. the embedding-layer output (the
  paper's "first layer of BERT"). Partner = random permutation of the batch; the embedding
  outputs and one-hot labels are mixed (padded to the longer row, union attention mask).
  Loss on the mixed samples only, as Zhang et al. train: ``Σ w·ℓ(mixed)``.
* ``manifold`` — Verma et al. (2019) at the [CLS] feature (the paper's "feature space of the
  task-specific layer"; Verma et al. draw the layer at random from a set, here it is fixed).
  Mixed samples only.
* ``kong`` — Kong et al. (2020) manifold smoothing, see :mod:`tdmixup.kong`.
* ``tdmixup`` — the paper: ``batches = (easy, ambiguous)``; row i of the easy batch is mixed
  with row i of the ambiguous batch (both truncated to the shorter one, as the paper's code
  does with uneven last batches), at ``MixupConfig.mix_at``.
* ``random_pairs`` — the ablation of the paper's Table 3, with TDMixUp's structure: two
  batches of ``batch_size`` from easy ∪ ambiguous, row i mixed with row i, the same loss. The
  loop plans one pass over the union per epoch and gives each step two of its batches (two
  random length groups, rows in random order, see :data:`PAIRS_FROM_ONE_SET`), so both arms
  take as many samples per step (2 × ``batch_size`` unmixed + ``batch_size`` mixed), give the
  mixed samples the same share of the loss and, on sets of 495 + 495, as many steps per epoch
  (31): only who is paired with whom differs.
* ``aum_saliency`` — Park & Caragea (ACL 2022), see :mod:`tdmixup.aum_saliency`: ``batches =
  (high-AUM half, low-AUM half)``, partners chosen by saliency, logits mixed.

Loss of ``tdmixup`` and ``random_pairs`` (``u`` = 2 unmixed batches), with
``m = mixed_weight``, ``v = unmixed_weight`` and mixed-row weight ``min(w_a, w_b)``::

    L = (m·Σ w·ℓ(mixed) + v·Σ_batches Σ w·CE(batch)) / (m + u·v)

With the loop's weights (each batch's weights sum to 1) and the defaults ``m = v = 1`` this is
the plain mean over all mixed and unmixed samples of the step: every sample counts the same,
and the loss stays on the scale of ``none``'s CE.

Differences from the paper's code (see REFERENCE.md):

* It mixes the output logits; ``mix_at="cls"`` mixes the [CLS] features and applies the head.
  For a linear head without dropout the two are equal (the head is affine and λ + (1−λ) = 1);
  here the head's dropout draws a fresh mask for the mixed features.
* Its loss is ``0.01·Σ_i ℓ_i / C + 0.5·CE(easy) + 0.5·CE(ambiguous)`` (the mixed term summed
  over the batch, averaged over classes). The same proportions are ``mixed_weight = 0.01·B/C``
  (0.0533 for SNLI with B = 16, C = 3) and ``unmixed_weight = 0.5``; the division by
  ``m + 2v`` rescales the whole loss only.
* λ ~ Beta(α, α) is drawn once per step (``lambda_mode="batch"``, as Zhang et al.) or per
  sample, not once per epoch; gradients are zeroed and the scheduler stepped every step (the
  loop's job). The unmixed CE uses all rows of both batches, so every sample is trained on
  once per epoch; only the mixed part is truncated.

Label smoothing (``MixupConfig.label_smoothing`` = ε > 0, every strategy): every target
distribution ``t`` of a CE term becomes ``(1−ε)·t + ε/C`` — torch's ``label_smoothing``
convention for the hard-label CE terms, and for MixUp's soft targets the one-hot labels are
smoothed *before* mixing. Smoothing is affine and λ + (1−λ) = 1, so this equals smoothing the
mixed target; the order does not matter. Why smooth the mixed targets too: ``mixup`` and
``manifold`` have no hard-label term, so "only the unmixed CE" would silently do nothing there;
every strategy then gets the same ε; and Park & Caragea (ACL 2022)'s code also smooths labels
before mixing. (Their code and Desai & Durrett's put ε/(C−1) on each wrong class and 1−ε on the
gold one; that α equals torch's ε = α·C/(C−1).)

Multiple choice: mixing two questions mixes ending k with ending k; labels are one-hot over
the K endings, and λ of a question applies to all its endings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from tdmixup.config import MixupConfig, Strategy
from tdmixup.model import Classifier

Batch = dict[str, Tensor]
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class StepOutput:
    """What one training step returns to the loop.

    Attributes:
        loss: scalar tensor to back-propagate.
        logits: detached ``[R, C]`` (``[R, K]``) logits of the unmixed forward of the step's
            rows (all batches concatenated in order, weight-0 rows included), or None when
            the strategy has no unmixed forward (``mixup``).
        sample_ids: ``[R]`` ids matching ``logits`` (None with it).
        lam: the step's λ (mean of the per-sample λ), for logging; None without MixUp.
    """

    loss: Tensor
    logits: Tensor | None = None
    sample_ids: Tensor | None = None
    lam: float | None = None


# --- primitives ------------------------------------------------------------------------------
def sample_lambda(alpha: float, shape: int | tuple[int, ...] = (), *, generator: torch.Generator | None = None) -> Tensor:
    """λ ~ Beta(α, α) (Zhang et al., 2018), float32 on the generator's device.

    Args:
        alpha: α ≥ 0; α = 0 gives λ = 1 (no mixing).
        shape: ``()`` for one λ per batch, ``B`` or ``(B,)`` for one per sample.
        generator: seeded RNG (same seed → same λ).

    >>> sample_lambda(0.0, 3)
    tensor([1., 1., 1.])
    >>> float(sample_lambda(0.4, generator=torch.Generator().manual_seed(0))) <= 1.0
    True
    """
    if alpha < 0:
        raise ValueError(f"MixUp alpha must be >= 0, got {alpha}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    device = generator.device if generator is not None else torch.device("cpu")
    if alpha == 0:
        return torch.ones(shape, device=device)
    concentration = torch.full((*shape, 2), float(alpha), dtype=torch.float64, device=device)
    return torch._sample_dirichlet(concentration, generator=generator)[..., 0].float()


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """``[B]`` int labels → ``[B, C]`` float one-hot."""
    return F.one_hot(labels.long(), num_classes).float()


def soft_cross_entropy(logits: Tensor, soft_targets: Tensor) -> Tensor:
    """Per-sample ``−Σ_c t_c · log softmax(z)_c`` for logits and targets ``[B, C]`` → ``[B]``.

    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> bool(torch.isclose(soft_cross_entropy(z, one_hot(torch.tensor([0]), 3)), F.cross_entropy(z, torch.tensor([0]))))
    True
    """
    return -(soft_targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def smooth_targets(targets: Tensor, eps: float) -> Tensor:
    """Label smoothing of target distributions ``[B, C]``: ``(1−ε)·t + ε/C`` (torch's convention).

    >>> smooth_targets(one_hot(torch.tensor([0]), 4), 0.2)
    tensor([[0.8500, 0.0500, 0.0500, 0.0500]])
    """
    if eps == 0:
        return targets
    return (1 - eps) * targets + eps / targets.shape[-1]


def hard_cross_entropy(logits: Tensor, labels: Tensor, eps: float = 0.0) -> Tensor:
    """Per-sample CE of ``[B, C]`` logits and ``[B]`` labels with label smoothing ε → ``[B]``
    (``soft_cross_entropy(logits, smooth_targets(one_hot(labels), ε))``)."""
    return F.cross_entropy(logits, labels, reduction="none", label_smoothing=eps)


def _broadcast(lam: Tensor | float, like: Tensor) -> Tensor:
    """λ (scalar or ``[B]``) shaped to broadcast over ``like`` ``[B, ...]``."""
    lam = torch.as_tensor(lam, device=like.device)
    if lam.dim() == 1:
        lam = lam.view(-1, *([1] * (like.dim() - 1)))
    return lam


def mix_tensors(a: Tensor, b: Tensor, lam: Tensor | float) -> Tensor:
    """``λ·a + (1−λ)·b`` with λ a scalar or ``[B]`` (one per leading row of ``a`` ``[B, ...]``)."""
    lam = _broadcast(lam, a).to(a.dtype)
    return lam * a + (1 - lam) * b


def pad_to_length(t: Tensor, length: int, value: int = 0) -> Tensor:
    """Right-pad the last dim of ``[..., L]`` to ``length`` with ``value``.

    >>> pad_to_length(torch.tensor([[5, 6]]), 4)
    tensor([[5, 6, 0, 0]])
    """
    if t.shape[-1] > length:
        raise ValueError(f"cannot pad a length-{t.shape[-1]} tensor to the shorter length {length}")
    return F.pad(t, (0, length - t.shape[-1]), value=value)


def union_attention_mask(mask_a: Tensor, mask_b: Tensor) -> Tensor:
    """Both masks padded to the longer length, then the elementwise maximum.

    >>> union_attention_mask(torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0]]))
    tensor([[1, 1, 0]])
    """
    length = max(mask_a.shape[-1], mask_b.shape[-1])
    return torch.maximum(pad_to_length(mask_a, length), pad_to_length(mask_b, length))


def mixed_attention_mask(mask_a: Tensor, mask_b: Tensor, lam: Tensor | float) -> Tensor:
    """Mask of a mixed sample: the union, except λ = 1 keeps ``a``'s mask and λ = 0 ``b``'s, so
    that the end points reproduce the unmixed forward exactly (``[B]`` λ per row)."""
    union = union_attention_mask(mask_a, mask_b)
    a, b = pad_to_length(mask_a, union.shape[-1]), pad_to_length(mask_b, union.shape[-1])
    lam = _broadcast(lam, union)
    return torch.where(lam == 1, a, torch.where(lam == 0, b, union))


def _per_row(lam: Tensor | float, num_choices: int | None) -> Tensor | float:
    """λ per question → λ per encoder row (each of the K endings gets its question's λ)."""
    if num_choices is None or not isinstance(lam, Tensor) or lam.dim() == 0:
        return lam
    return lam.repeat_interleave(num_choices)


def _num_choices(batch: Batch) -> int | None:
    return batch["input_ids"].shape[1] if batch["input_ids"].dim() == 3 else None


def mix_embeddings(model: Classifier, batch_a: Batch, batch_b: Batch, lam: Tensor | float, *, pad_token_id: int = 0) -> Tensor:
    """[CLS] features of MixUp in the input space (the embedding-layer output).

    ``features(embedding_output = λ·embed(a) + (1−λ)·embed(b), mask = union)``, both batches
    padded to the longer length with ``pad_token_id`` (see :func:`mixed_attention_mask`).

    Args:
        model: the classifier.
        batch_a, batch_b: batches with the same number of rows B (and K).
        lam: scalar or ``[B]`` (one per question for multiple choice).
        pad_token_id: token id used to pad the shorter batch.

    Returns:
        ``[N, H]`` mixed features (N = B, or B·K for multiple choice).
    """
    length = max(batch_a["input_ids"].shape[-1], batch_b["input_ids"].shape[-1])
    ids_a, ids_b = (pad_to_length(x["input_ids"], length, pad_token_id) for x in (batch_a, batch_b))
    tt_a, tt_b = (None if x.get("token_type_ids") is None else pad_to_length(x["token_type_ids"], length)
                  for x in (batch_a, batch_b))
    mask = mixed_attention_mask(batch_a["attention_mask"], batch_b["attention_mask"], lam)
    mixed = mix_tensors(model.embed(ids_a, tt_a), model.embed(ids_b, tt_b), _per_row(lam, _num_choices(batch_a)))
    return model.features(ids_a, mask, tt_a, embedding_output=mixed)


def mix_features(feat_a: Tensor, feat_b: Tensor, lam: Tensor | float, *, num_choices: int | None = None) -> Tensor:
    """Manifold MixUp of [CLS] features ``[N, H]``: ``λ·h_a + (1−λ)·h_b``; a ``[B]`` λ is per
    question when ``num_choices`` is given (N = B·K)."""
    return mix_tensors(feat_a, feat_b, _per_row(lam, num_choices))


# --- batch helpers ---------------------------------------------------------------------------
def _inputs(batch: Batch) -> dict[str, Tensor]:
    return {k: batch[k] for k in INPUT_KEYS if batch.get(k) is not None}


def _select(batch: Batch, index: Tensor) -> Batch:
    return {k: v[index.to(v.device)] for k, v in batch.items()}


def _encoder_rows(index: Tensor, num_choices: int | None) -> Tensor:
    """Question indices ``[B]`` → rows of the flattened ``[B·K, ...]`` encoder tensors."""
    if num_choices is None:
        return index
    return (index[:, None] * num_choices + torch.arange(num_choices, device=index.device)).flatten()


def partner_index(weight: Tensor, generator: torch.Generator | None = None, *, reverse: bool = False) -> Tensor:
    """Partner of each row: a random permutation (or the reversal) of the rows with weight > 0;
    weight-0 dummies are their own partners, so they never enter a real row's sample.

    >>> partner_index(torch.tensor([1.0, 1.0, 1.0, 0.0]), reverse=True)
    tensor([2, 1, 0, 3])
    """
    real = torch.nonzero(weight.detach().cpu() > 0).flatten()
    if reverse:
        order = real.flip(0)
    else:
        device = generator.device if generator is not None else torch.device("cpu")
        order = real[torch.randperm(len(real), generator=generator, device=device).cpu()]
    index = torch.arange(len(weight))
    index[real] = order
    return index


def _lambda_for(config: MixupConfig, rows: int, generator: torch.Generator) -> Tensor:
    return sample_lambda(config.alpha, () if config.lambda_mode == "batch" else (rows,), generator=generator)


def _forward(model: Classifier, batch: Batch) -> tuple[Tensor, Tensor]:
    """``(features [N, H], logits [B, C])`` of the unmixed batch."""
    feats = model.features(**_inputs(batch))
    return feats, model.classify(feats, _num_choices(batch))


def _weighted(per_sample: Tensor, weight: Tensor) -> Tensor:
    return (weight.to(per_sample.dtype) * per_sample).sum()


# --- strategies ------------------------------------------------------------------------------
def _step_none(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator, pad: int) -> StepOutput:
    (batch,) = batches
    _, logits = _forward(model, batch)
    loss = _weighted(hard_cross_entropy(logits, batch["labels"], config.label_smoothing), batch["weight"])
    return StepOutput(loss, logits.detach(), batch["sample_id"])


def _step_mixed_only(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator,
                     pad: int, *, at: str) -> StepOutput:
    """``mixup`` (``at="embeddings"``) and ``manifold`` (``at="cls"``): mixed samples only."""
    (batch,) = batches
    k = _num_choices(batch)
    lam = _lambda_for(config, len(batch["labels"]), generator)
    perm = partner_index(batch["weight"], generator)
    partner = _select(batch, perm)
    logits = None
    if at == "embeddings":
        mixed = mix_embeddings(model, batch, partner, lam, pad_token_id=pad)
    else:
        feats, logits = _forward(model, batch)
        mixed = mix_features(feats, feats[_encoder_rows(perm.to(feats.device), k)], lam, num_choices=k)
    mixed_logits = model.classify(mixed, k)
    c = mixed_logits.shape[-1]
    targets = mix_tensors(one_hot(batch["labels"], c), one_hot(partner["labels"], c), lam)
    loss = _weighted(soft_cross_entropy(mixed_logits, smooth_targets(targets, config.label_smoothing)), batch["weight"])
    ids = None if logits is None else batch["sample_id"]
    return StepOutput(loss, None if logits is None else logits.detach(), ids, float(lam.mean()))


def _mixed_logits(model: Classifier, a: Batch, b: Batch, feat_a: Tensor, feat_b: Tensor, lam: Tensor,
                  config: MixupConfig, pad: int) -> Tensor:
    """Logits of the samples mixed from rows of ``a`` and ``b`` at ``config.mix_at``."""
    k = _num_choices(a)
    if config.mix_at == "embeddings":
        mixed = mix_embeddings(model, a, b, lam, pad_token_id=pad)
    elif config.mix_at == "cls":
        mixed = mix_features(feat_a, feat_b, lam, num_choices=k)
    else:
        raise ValueError(f"MixupConfig.mix_at must be 'cls' or 'embeddings', got {config.mix_at!r}")
    return model.classify(mixed, k)


def _mixed_plus_unmixed(config: MixupConfig, mixed: tuple[Tensor, Tensor, Tensor], unmixed: list[tuple[Tensor, Batch]]) -> Tensor:
    """``(m·Σ w·ℓ(mixed) + v·Σ_batches Σ w·CE) / (m + u·v)`` (module docstring)."""
    logits, targets, weight = mixed
    m, v = config.mixed_weight, config.unmixed_weight
    if m < 0 or v < 0 or m + v == 0:
        raise ValueError(f"mixed_weight and unmixed_weight must be >= 0 and not both 0, got {m} and {v}")
    eps = config.label_smoothing
    loss = m * _weighted(soft_cross_entropy(logits, smooth_targets(targets, eps)), weight)
    for batch_logits, batch in unmixed:
        loss = loss + v * _weighted(hard_cross_entropy(batch_logits, batch["labels"], eps), batch["weight"])
    return loss / (m + len(unmixed) * v)


def _step_tdmixup(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator, pad: int) -> StepOutput:
    """Row i of the easy batch × row i of the ambiguous batch, plus both unmixed batches."""
    easy, amb = batches
    k = _num_choices(easy)
    if k != _num_choices(amb):
        raise ValueError(f"easy and ambiguous batches differ in number of choices: {k} vs {_num_choices(amb)}")
    n = min(len(easy["labels"]), len(amb["labels"]))
    lam = _lambda_for(config, n, generator)
    (feat_e, logits_e), (feat_a, logits_a) = _forward(model, easy), _forward(model, amb)
    head = torch.arange(n)
    a, b = _select(easy, head), _select(amb, head)
    rows = _encoder_rows(head, k).to(feat_e.device)
    mixed_logits = _mixed_logits(model, a, b, feat_e[rows], feat_a[rows], lam, config, pad)
    c = mixed_logits.shape[-1]
    targets = mix_tensors(one_hot(a["labels"], c), one_hot(b["labels"], c), lam)
    mixed = (mixed_logits, targets, torch.minimum(a["weight"], b["weight"]))
    loss = _mixed_plus_unmixed(config, mixed, [(logits_e, easy), (logits_a, amb)])
    logits = torch.cat([logits_e, logits_a]).detach()
    return StepOutput(loss, logits, torch.cat([easy["sample_id"], amb["sample_id"]]), float(lam.mean()))


def _step_random_pairs(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator, pad: int) -> StepOutput:
    """Two random batches of easy ∪ ambiguous, row i × row i, plus both unmixed batches:
    TDMixUp's step (same sample counts and loss) with random instead of easy × ambiguous pairs."""
    return _step_tdmixup(model, batches, config, generator, pad)


def _step_kong(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator, pad: int) -> StepOutput:
    from tdmixup.kong import kong_loss

    (batch,) = batches
    loss, logits = kong_loss(model, batch, config, generator)
    return StepOutput(loss, logits.detach(), batch["sample_id"])


def _step_aum_saliency(model: Classifier, batches: Sequence[Batch], config: MixupConfig, generator: torch.Generator,
                       pad: int) -> StepOutput:
    from tdmixup.aum_saliency import step_aum_saliency

    return step_aum_saliency(model, list(batches), config, generator, pad)


StepFn = Callable[[Classifier, Sequence[Batch], MixupConfig, torch.Generator, int], StepOutput]
_STEPS: dict[str, tuple[int, StepFn]] = {
    "none": (1, _step_none),
    "mixup": (1, partial(_step_mixed_only, at="embeddings")),
    "manifold": (1, partial(_step_mixed_only, at="cls")),
    "kong": (1, _step_kong),
    "tdmixup": (2, _step_tdmixup),
    "random_pairs": (2, _step_random_pairs),
    "aum_saliency": (2, _step_aum_saliency),
}

PAIRS_FROM_ONE_SET = frozenset({"random_pairs"})
"""Strategies whose two batches per step come from one training set (the loop plans them)."""


def batches_per_step(strategy: Strategy) -> int:
    """Planned batches one step of ``strategy`` takes (2 for ``tdmixup`` and ``random_pairs``).

    >>> batches_per_step("none"), batches_per_step("random_pairs")
    (1, 2)
    """
    if strategy not in _STEPS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(_STEPS)}")
    return _STEPS[strategy][0]


def compute_step(strategy: Strategy, model: Classifier, batches: Sequence[Batch], config: MixupConfig,
                 generator: torch.Generator, *, pad_token_id: int = 0) -> StepOutput:
    """Loss (and unmixed logits) of one training step of ``strategy``.

    Args:
        strategy: ``none | mixup | manifold | kong | tdmixup | random_pairs | aum_saliency`` (module docstring).
        model: the (unwrapped) classifier; its train/eval mode is respected.
        batches: ``(easy, ambiguous)`` for ``tdmixup``, two batches of easy ∪ ambiguous for
            ``random_pairs``, ``(high, low)`` with a ``saliency`` column for
            ``aum_saliency``, one batch otherwise.
        config: λ distribution, mixing point, loss weights, Kong et al.'s ε and β.
        generator: RNG for λ, partners and Kong's noise (drawn in that order).
        pad_token_id: pad id used when two batches of different lengths are mixed.

    Returns:
        :class:`StepOutput`; call ``loss.backward()`` on it.
    """
    if strategy not in _STEPS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(_STEPS)}")
    n_batches, step = _STEPS[strategy]
    if len(batches) != n_batches:
        raise ValueError(f"strategy {strategy!r} takes {n_batches} batch(es) per step, got {len(batches)}")
    for batch in batches:
        missing = {"input_ids", "attention_mask", "labels", "sample_id", "weight"} - set(batch)
        if missing:
            raise ValueError(f"batch lacks {sorted(missing)}; it has {sorted(batch)}")
    return step(model, batches, config, generator, pad_token_id)
