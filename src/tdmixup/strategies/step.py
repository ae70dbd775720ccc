"""One training step per strategy (:func:`compute_step`), built from
:mod:`tdmixup.strategies.mixing`.

Batches are dicts of tensors (see :mod:`tdmixup.strategies.mixing`); rows of weight 0 are padding
dummies.

Strategies (``MixupConfig.strategy``), per step, with ``ℓ`` the per-sample (soft) cross entropy:

* ``none`` — ``Σ w·CE``.
* ``mixup`` — Zhang et al. (2018) in BERT's input space, i.e. the embedding-layer output (the
  paper's "first layer of BERT"). Partner = random permutation of the batch; the embedding
  outputs and one-hot labels are mixed (padded to the longer row, union attention mask).
  Loss on the mixed samples only, as Zhang et al. train: ``Σ w·ℓ(mixed)``.
* ``manifold`` — Verma et al. (2019) at the [CLS] feature (the paper's "feature space of the
  task-specific layer"; Verma et al. draw the layer at random from a set, here it is fixed).
  Mixed samples only.
* ``kong`` — Kong et al. (2020) manifold smoothing, see :mod:`tdmixup.strategies.kong`.
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
* ``aum_saliency`` — Park & Caragea (ACL 2022), see :mod:`tdmixup.strategies.aum_saliency`:
``batches =
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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from tdmixup.core.config import MixupConfig, Strategy
from tdmixup.data.collate import Grouping
from tdmixup.model.classifier import Classifier
from tdmixup.strategies.aum_saliency import step_aum_saliency
from tdmixup.strategies.kong import kong_loss
from tdmixup.strategies.mixing import (
    INPUT_KEYS,
    Batch,
    StepOutput,
    draw_lambda,
    encoder_rows,
    forward_unmixed,
    hard_cross_entropy,
    mix_embeddings,
    mix_features,
    mix_tensors,
    mixed_attention_mask,
    num_choices_of,
    one_hot,
    pad_to_length,
    partner_index,
    sample_lambda,
    smooth_targets,
    soft_cross_entropy,
    take_rows,
    union_attention_mask,
    weighted_sum,
)

__all__ = [
    "PAIRS_FROM_ONE_SET",
    "PARTNERS_IN_BATCH",
    "StepFn",
    "batch_grouping",
    "batches_per_step",
    "check_batch_for_processes",
    "compute_step",
    "min_rows_per_process",
    # moved to tdmixup.strategies.mixing; still importable from here
    "INPUT_KEYS",
    "mixed_attention_mask",
    "pad_to_length",
    "sample_lambda",
    "union_attention_mask",
]


# --- strategies ------------------------------------------------------------------------------
def _step_none(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
    (batch,) = batches
    _, logits = forward_unmixed(model, batch)
    loss = weighted_sum(
        hard_cross_entropy(logits, batch["labels"], config.label_smoothing), batch["weight"]
    )
    return StepOutput(loss, logits.detach(), batch["sample_id"])


def _step_mixed_only(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
    *,
    at: str,
) -> StepOutput:
    """``mixup`` (``at="embeddings"``) and ``manifold`` (``at="cls"``): mixed samples only."""
    (batch,) = batches
    k = num_choices_of(batch)
    lam = draw_lambda(config, len(batch["labels"]), generator)
    perm = partner_index(batch["weight"], generator)
    partner = take_rows(batch, perm)
    logits = None
    if at == "embeddings":
        mixed = mix_embeddings(model, batch, partner, lam, pad_token_id=pad)
    else:
        feats, logits = forward_unmixed(model, batch)
        mixed = mix_features(
            feats, feats[encoder_rows(perm.to(feats.device), k)], lam, num_choices=k
        )
    mixed_logits = model.classify(mixed, k)
    c = mixed_logits.shape[-1]
    targets = mix_tensors(one_hot(batch["labels"], c), one_hot(partner["labels"], c), lam)
    loss = weighted_sum(
        soft_cross_entropy(mixed_logits, smooth_targets(targets, config.label_smoothing)),
        batch["weight"],
    )
    ids = None if logits is None else batch["sample_id"]
    return StepOutput(loss, None if logits is None else logits.detach(), ids, float(lam.mean()))


def _mixed_logits(
    model: Classifier,
    a: Batch,
    b: Batch,
    feat_a: Tensor,
    feat_b: Tensor,
    lam: Tensor,
    config: MixupConfig,
    pad: int,
) -> Tensor:
    """Logits of the samples mixed from rows of ``a`` and ``b`` at ``config.mix_at``."""
    k = num_choices_of(a)
    if config.mix_at == "embeddings":
        mixed = mix_embeddings(model, a, b, lam, pad_token_id=pad)
    elif config.mix_at == "cls":
        mixed = mix_features(feat_a, feat_b, lam, num_choices=k)
    else:
        raise ValueError(f"MixupConfig.mix_at must be 'cls' or 'embeddings', got {config.mix_at!r}")
    return model.classify(mixed, k)


def _mixed_plus_unmixed(
    config: MixupConfig, mixed: tuple[Tensor, Tensor, Tensor], unmixed: list[tuple[Tensor, Batch]]
) -> Tensor:
    """``(m·Σ w·ℓ(mixed) + v·Σ_batches Σ w·CE) / (m + u·v)`` (module docstring)."""
    logits, targets, weight = mixed
    m, v = config.mixed_weight, config.unmixed_weight
    if m < 0 or v < 0 or m + v == 0:
        raise ValueError(
            f"mixed_weight and unmixed_weight must be >= 0 and not both 0, got {m} and {v}"
        )
    eps = config.label_smoothing
    loss = m * weighted_sum(soft_cross_entropy(logits, smooth_targets(targets, eps)), weight)
    for batch_logits, batch in unmixed:
        loss = loss + v * weighted_sum(
            hard_cross_entropy(batch_logits, batch["labels"], eps), batch["weight"]
        )
    return loss / (m + len(unmixed) * v)


def _step_tdmixup(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
    """Row i of the easy batch × row i of the ambiguous batch, plus both unmixed batches."""
    easy, amb = batches
    k = num_choices_of(easy)
    if k != num_choices_of(amb):
        raise ValueError(
            f"easy and ambiguous batches differ in number of choices: {k} vs {num_choices_of(amb)}"
        )
    n = min(len(easy["labels"]), len(amb["labels"]))
    lam = draw_lambda(config, n, generator)
    (feat_e, logits_e), (feat_a, logits_a) = (
        forward_unmixed(model, easy),
        forward_unmixed(model, amb),
    )
    head = torch.arange(n)
    a, b = take_rows(easy, head), take_rows(amb, head)
    rows = encoder_rows(head, k).to(feat_e.device)
    mixed_logits = _mixed_logits(model, a, b, feat_e[rows], feat_a[rows], lam, config, pad)
    c = mixed_logits.shape[-1]
    targets = mix_tensors(one_hot(a["labels"], c), one_hot(b["labels"], c), lam)
    mixed = (mixed_logits, targets, torch.minimum(a["weight"], b["weight"]))
    loss = _mixed_plus_unmixed(config, mixed, [(logits_e, easy), (logits_a, amb)])
    logits = torch.cat([logits_e, logits_a]).detach()
    return StepOutput(
        loss, logits, torch.cat([easy["sample_id"], amb["sample_id"]]), float(lam.mean())
    )


def _step_random_pairs(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
    """Two random batches of easy ∪ ambiguous, row i × row i, plus both unmixed batches:
    TDMixUp's step (same sample counts and loss) with random instead of easy × ambiguous pairs."""
    return _step_tdmixup(model, batches, config, generator, pad)


def _step_kong(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
    (batch,) = batches
    loss, logits = kong_loss(model, batch, config, generator)
    return StepOutput(loss, logits.detach(), batch["sample_id"])


def _step_aum_saliency(
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    pad: int,
) -> StepOutput:
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

PARTNERS_IN_BATCH = frozenset({"mixup", "manifold", "kong"})
"""Strategies that draw each row's partner among the rows of its own batch (of this process's
share of it, with several processes): the loop needs at least 2 rows per process for them."""


def batch_grouping(strategy: Strategy, mix_at: str = "cls") -> Grouping:
    """How length-grouped ``strategy``'s batches may be (:data:`tdmixup.data.collate.Grouping`).

    ``"trainer"`` (HF ``Trainer``'s mega-batches of 50 batches) where a sample's partner does not
    depend on which rows share its batch: ``none`` has no partner, and ``tdmixup`` /
    ``random_pairs`` mixing at the [CLS] feature pair row i of one batch with row i of another
    batch of independent length, rows in random order inside each batch (so partners are random
    and not matched by length rank). ``"random_partners"`` (smaller mega-batches, batch-mates
    re-drawn every epoch) for in-batch partners (``mixup``, ``manifold``, ``kong``),
    ``aum_saliency`` and mixing at the embeddings (the mixed pair is padded to the longer row).

    >>> batch_grouping("none"), batch_grouping("tdmixup"), batch_grouping("manifold")
    ('trainer', 'trainer', 'random_partners')
    """
    if strategy == "none" or (strategy in ("tdmixup", "random_pairs") and mix_at == "cls"):
        return "trainer"
    return "random_partners"


def min_rows_per_process(strategy: Strategy) -> int:
    """Fewest real rows a process's share of a batch needs: 2 where partners are drawn in the
    batch (:data:`PARTNERS_IN_BATCH`; one row could only be mixed with itself), else 1."""
    return 2 if strategy in PARTNERS_IN_BATCH else 1


def check_batch_for_processes(strategy: Strategy, batch_size: int, world_size: int) -> None:
    """Refuse a global batch that leaves a process fewer rows than ``strategy`` mixes.

    Raises:
        ValueError: naming the strategy, the batch size and the smallest that works.
    """
    per_process = min_rows_per_process(strategy)
    need = per_process * world_size
    if per_process > 1 and world_size > 1 and batch_size < need:
        raise ValueError(
            f"strategy {strategy!r} draws MixUp partners among each process's rows: a global "
            f"batch of {batch_size} over {world_size} processes leaves some with one row, which "
            f"could only be mixed with itself; use a batch size of at least {need} "
            f"(2 per process) or fewer processes"
        )


def batches_per_step(strategy: Strategy) -> int:
    """Planned batches one step of ``strategy`` takes (2 for ``tdmixup`` and ``random_pairs``).

    >>> batches_per_step("none"), batches_per_step("random_pairs")
    (1, 2)
    """
    if strategy not in _STEPS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(_STEPS)}")
    return _STEPS[strategy][0]


def compute_step(
    strategy: Strategy,
    model: Classifier,
    batches: Sequence[Batch],
    config: MixupConfig,
    generator: torch.Generator,
    *,
    pad_token_id: int = 0,
) -> StepOutput:
    """Loss (and unmixed logits) of one training step of ``strategy``.

    Args:
        strategy: ``none | mixup | manifold | kong | tdmixup | random_pairs | aum_saliency``
            (module docstring).
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
        raise ValueError(
            f"strategy {strategy!r} takes {n_batches} batch(es) per step, got {len(batches)}"
        )
    for batch in batches:
        missing = {"input_ids", "attention_mask", "labels", "sample_id", "weight"} - set(batch)
        if missing:
            raise ValueError(f"batch lacks {sorted(missing)}; it has {sorted(batch)}")
    return step(model, batches, config, generator, pad_token_id)
