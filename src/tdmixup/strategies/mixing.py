"""MixUp's building blocks, shared by every strategy (:mod:`tdmixup.strategies.step`,
:mod:`tdmixup.strategies.kong`,
:mod:`tdmixup.strategies.aum_saliency`): λ, one-hot and soft targets, (soft) cross entropy, mixing
of embeddings and [CLS] features, partner choice and batch helpers.

A batch is a dict of tensors: ``input_ids``, ``attention_mask``, optional ``token_type_ids``
(``[B, L]`` for pair tasks, ``[B, K, L]`` for multiple choice), ``labels`` ``[B]``,
``sample_id`` ``[B]`` and ``weight`` ``[B]``. The loop scales ``weight`` so that
``(weight * per_sample_loss).sum()`` is the loss of these rows; rows of weight 0 are padding
dummies and contribute nothing (they are never chosen as a MixUp partner of a real row).
Multiple choice: mixing two questions mixes ending k with ending k; labels are one-hot over
the K endings, and λ of a question applies to all its endings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tdmixup.core.config import MixupConfig
from tdmixup.model.classifier import Classifier

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
def sample_lambda(
    alpha: float, shape: int | tuple[int, ...] = (), *, generator: torch.Generator | None = None
) -> Tensor:
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
    # torch.distributions takes no generator: seed a forked CPU RNG from one draw of ``generator``
    # (public API only, and the caller's stream advances by exactly one number per call).
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=device))
    with torch.random.fork_rng(devices=[]):  # saves and restores the CPU generator only
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed: that reseeds CUDA too
        concentration = torch.tensor(float(alpha), dtype=torch.float64)
        lam = torch.distributions.Beta(concentration, concentration).sample(shape)
    return lam.float().to(device)


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """``[B]`` int labels → ``[B, C]`` float one-hot.

    A scatter rather than ``F.one_hot``, whose label range check reads the labels on the host
    (a sync per call on CPU and other non-CUDA devices); an out-of-range label still fails.

    >>> one_hot(torch.tensor([2, 0]), 3)
    tensor([[0., 0., 1.],
            [1., 0., 0.]])
    """
    index = labels.long().unsqueeze(-1)
    out = torch.zeros(*labels.shape, num_classes, dtype=torch.float32, device=labels.device)
    return out.scatter_(-1, index, 1.0)


def soft_cross_entropy(logits: Tensor, soft_targets: Tensor) -> Tensor:
    """Per-sample ``−Σ_c t_c · log softmax(z)_c`` for logits and targets ``[B, C]`` → ``[B]``.

    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> y = torch.tensor([0])
    >>> bool(torch.isclose(soft_cross_entropy(z, one_hot(y, 3)), F.cross_entropy(z, y)))
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


def num_choices_of(batch: Batch) -> int | None:
    return batch["input_ids"].shape[1] if batch["input_ids"].dim() == 3 else None


def mix_embeddings(
    model: Classifier, batch_a: Batch, batch_b: Batch, lam: Tensor | float, *, pad_token_id: int = 0
) -> Tensor:
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
    tt_a, tt_b = (
        None if x.get("token_type_ids") is None else pad_to_length(x["token_type_ids"], length)
        for x in (batch_a, batch_b)
    )
    mask = mixed_attention_mask(batch_a["attention_mask"], batch_b["attention_mask"], lam)
    mixed = mix_tensors(
        model.embed(ids_a, tt_a), model.embed(ids_b, tt_b), _per_row(lam, num_choices_of(batch_a))
    )
    return model.features(ids_a, mask, tt_a, embedding_output=mixed)


def mix_features(
    feat_a: Tensor, feat_b: Tensor, lam: Tensor | float, *, num_choices: int | None = None
) -> Tensor:
    """Manifold MixUp of [CLS] features ``[N, H]``: ``λ·h_a + (1−λ)·h_b``; a ``[B]`` λ is per
    question when ``num_choices`` is given (N = B·K)."""
    return mix_tensors(feat_a, feat_b, _per_row(lam, num_choices))


# --- batch helpers ---------------------------------------------------------------------------
def model_inputs(batch: Batch) -> dict[str, Tensor]:
    """The encoder's inputs of a batch.

    ``input_ids``, ``attention_mask`` and ``token_type_ids`` when present.
    """
    return {k: batch[k] for k in INPUT_KEYS if batch.get(k) is not None}


def take_rows(batch: Batch, index: Tensor) -> Batch:
    """Every column of ``batch`` at rows ``index`` ``[R]``."""
    return {k: v[index.to(v.device)] for k, v in batch.items()}


def encoder_rows(index: Tensor, num_choices: int | None) -> Tensor:
    """Question indices ``[B]`` → rows of the flattened ``[B·K, ...]`` encoder tensors."""
    if num_choices is None:
        return index
    return (index[:, None] * num_choices + torch.arange(num_choices, device=index.device)).flatten()


def partner_index(
    weight: Tensor, generator: torch.Generator | None = None, *, reverse: bool = False
) -> Tensor:
    """Partner of each row among the rows with weight > 0; weight-0 dummies are their own
    partners, so they never enter a real row's sample.

    Random (default): the real rows in a random order, each row's partner the next one in that
    order (the last one's, the first): every row's partner is drawn uniformly from the *other*
    real rows, so no row is mixed with itself when there are two or more (a plain random
    permutation would leave a row unmixed with probability 1/B: one of two rows, half the time).
    ``reverse``: the real rows reversed (Kong et al.; the middle row of an odd count is its own).

    Computed on ``weight``'s device without reading it on the host (no sync on a GPU): one
    uniform key per row from ``generator`` (copied to the device), the dummies' keys above all
    real ones; sorting the keys gives the real rows in random order, then the dummies in order,
    and the rows sorted real-first take those partners.

    >>> partner_index(torch.tensor([1.0, 1.0, 1.0, 0.0]), reverse=True)
    tensor([2, 1, 0, 3])
    >>> partner_index(torch.tensor([1.0, 1.0]), torch.Generator().manual_seed(0))
    tensor([1, 0])
    """
    n = len(weight)
    device = weight.device
    real = weight.detach() > 0
    rows = torch.arange(n, device=device)
    if reverse:
        keys = rows.to(torch.float64)  # the real rows in order; partners mirror them
    else:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        drawn = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
        keys = drawn.to(device, non_blocking=True)
    # dummies after every real row (keys of real rows are below n), in their own order
    keys = torch.where(real, keys, (2 * n + 1 + rows).to(torch.float64))
    order = torch.argsort(keys, stable=True)  # real rows (shuffled or in order), then dummies
    count = real.sum()  # stays on the device: no host read
    if reverse:
        partner_pos = count - 1 - rows
    else:  # the next real row in the shuffled order, the last one's the first
        partner_pos = torch.where(rows + 1 < count, rows + 1, torch.zeros_like(rows))
    partner_pos = torch.where(rows < count, partner_pos, rows)  # dummies: their own partners
    index = torch.empty_like(rows)
    index[order] = order[partner_pos]
    return index


def draw_lambda(config: MixupConfig, rows: int, generator: torch.Generator) -> Tensor:
    """One λ for the step (``lambda_mode="batch"``, shape ``()``) or one per row (``[rows]``)."""
    return sample_lambda(
        config.alpha, () if config.lambda_mode == "batch" else (rows,), generator=generator
    )


def forward_unmixed(model: Classifier, batch: Batch) -> tuple[Tensor, Tensor]:
    """``(features [N, H], logits [B, C])`` of the unmixed batch."""
    feats = model.features(**model_inputs(batch))
    return feats, model.classify(feats, num_choices_of(batch))


def weighted_sum(per_sample: Tensor, weight: Tensor) -> Tensor:
    """``Σ_i w_i·ℓ_i`` of per-sample losses ``[B]`` and the loop's row weights ``[B]``; a scalar."""
    return (weight.to(per_sample.dtype) * per_sample).sum()
