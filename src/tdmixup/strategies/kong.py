"""Manifold smoothing of Kong et al. (2020), "Calibrated Language Model Fine-Tuning for In- and
Out-of-Distribution Data" (EMNLP), a baseline of the paper's Table 2.

Per step, on the word embeddings ``x`` (before position/type embeddings are added):

* on-manifold: ``x₀ = x + U(−ε_in, ε_in)``; one signed-gradient step that *reduces* the cosine
  distance between the mean-pooled last hidden layer of ``x₀`` and that of the partner (the
  batch in reverse order), ``x_on = clip_{[x−ε_in, x+ε_in]}(x₀ − ε_in·sign ∇)``; soft label
  ``(1−ε_y)·y + ε_y·y_partner``; loss ``ℓ_on = softCE(z(x_on), ỹ)``.
* off-manifold: FGSM ``x_off = x + ε_out·sign ∇_x CE(z(x), y)`` (the direction that increases the
  loss); loss ``ℓ_off = −H(softmax z(x_off))`` (minimising it maximises predictive entropy).
* total ``Σ w·(CE + β_on·ℓ_on + β_off·ℓ_off)``. With ``label_smoothing`` ε the CE and the
  on-manifold soft label are smoothed towards uniform (see :mod:`tdmixup.strategies.step`).

As in Kong et al.'s code the perturbations are searched in eval mode (no dropout) and the
three losses are taken in train mode. The search uses :func:`torch.autograd.grad` on the
perturbation only, so it leaves no gradient on the parameters. Differences from their code:
the mean pooling skips padding positions, the partner is encoded with its own attention mask
and token type ids are passed (they use the sample's mask for the partner, ``token_type_ids=None``
and single-sentence tasks); one backward over the summed loss instead of two (same gradient).
Multiple choice: each ending is perturbed and pooled on its own; ending k pairs with ending k
of the partner question; labels are one-hot over the K endings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from tdmixup.core.config import MixupConfig
from tdmixup.model.classifier import Classifier, flatten_choices
from tdmixup.strategies.mixing import (
    Batch,
    encoder_rows,
    hard_cross_entropy,
    num_choices_of,
    one_hot,
    partner_index,
    smooth_targets,
    soft_cross_entropy,
    weighted_sum,
)


@contextmanager
def _eval_mode(model: Classifier) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def word_embeddings(model: Classifier, batch: Batch) -> Tensor:
    """Detached word embeddings ``[N, L, H]`` of the batch's tokens (N = B·K for MC)."""
    with torch.no_grad():
        return (
            cast(Any, model.encoder)
            .get_input_embeddings()(flatten_choices(batch["input_ids"]))
            .detach()
        )


def _mean_hidden(
    model: Classifier, embeds: Tensor, mask: Tensor, token_type_ids: Tensor | None
) -> Tensor:
    """Mean over the unmasked positions of the last hidden layer, ``[N, H]``."""
    hidden = model.encoder(
        inputs_embeds=embeds, attention_mask=mask, token_type_ids=token_type_ids
    ).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def _logits(model: Classifier, batch: Batch, embeds: Tensor) -> Tensor:
    return model.classify(
        model.features(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            inputs_embeds=embeds,
        ),
        num_choices_of(batch),
    )


def uniform_on(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) float32 noise of ``x``'s shape, drawn on ``x``'s device.

    A ``generator`` on another device (the loop's CPU generator, with the model on a GPU) seeds
    a generator on ``x``'s device with one draw, so the ``[N, L, H]`` noise is never made on the
    host and copied; on the generator's own device it draws directly (CPU runs unchanged).
    """
    if generator is None or generator.device == x.device:
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    local = torch.Generator(device=x.device).manual_seed(seed)
    return torch.rand(x.shape, generator=local, device=x.device, dtype=torch.float32)


def on_manifold_embeddings(
    model: Classifier,
    batch: Batch,
    partner: Tensor,
    *,
    eps_in: float,
    eps_y: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Kong et al.'s on-manifold sample: perturbed word embeddings and smoothed labels.

    Args:
        model: the classifier.
        batch: the batch (``[B, L]`` or ``[B, K, L]`` inputs).
        partner: ``[B]`` index of each row's partner (Kong et al.: the batch reversed).
        eps_in: L∞ radius of the perturbation.
        eps_y: weight of the partner's label.
        generator: RNG of the uniform start.

    Returns:
        ``(x_on [N, L, H], targets [B, C])``, both detached, ``‖x_on − x‖∞ ≤ ε_in``.
    """
    k = num_choices_of(batch)
    mask = flatten_choices(batch["attention_mask"])
    tt = None if batch.get("token_type_ids") is None else flatten_choices(batch["token_type_ids"])
    x = word_embeddings(model, batch)
    noise = (uniform_on(x, generator) * 2 - 1) * eps_in
    x0 = (x + noise.to(x.dtype)).requires_grad_(True)
    rows = encoder_rows(partner.to(x.device), k)
    with _eval_mode(model):
        with torch.no_grad():
            target = _mean_hidden(model, x[rows], mask[rows], None if tt is None else tt[rows])
        distance = (
            1 - F.cosine_similarity(_mean_hidden(model, x0, mask, tt), target, dim=-1)
        ).sum()
        (grad,) = torch.autograd.grad(distance, x0)
    x_on = torch.clamp(x0.detach() - eps_in * grad.sign(), min=x - eps_in, max=x + eps_in)
    c = k if k is not None else model.num_labels
    y = one_hot(batch["labels"], c)
    return x_on, ((1 - eps_y) * y + eps_y * y[partner.to(y.device)]).detach()


def off_manifold_embeddings(model: Classifier, batch: Batch, *, eps_out: float) -> Tensor:
    """Kong et al.'s off-manifold sample: one FGSM step ``x + ε_out·sign ∇_x CE`` (detached)."""
    x = word_embeddings(model, batch)
    x0 = x.clone().requires_grad_(True)
    with _eval_mode(model):
        ce = F.cross_entropy(_logits(model, batch, x0), batch["labels"], reduction="sum")
        (grad,) = torch.autograd.grad(ce, x0)
    return (x + eps_out * grad.sign()).detach()


def kong_loss(
    model: Classifier, batch: Batch, config: MixupConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``Σ w·(CE + β_on·ℓ_on + β_off·ℓ_off)`` of one batch (module docstring).

    Returns:
        ``(loss, logits)``: the scalar loss and the ``[B, C]`` logits of the clean batch.
    """
    feats = model.features(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    logits = model.classify(feats, num_choices_of(batch))
    ce = hard_cross_entropy(logits, batch["labels"], config.label_smoothing)
    partner = partner_index(batch["weight"], generator, reverse=True)
    x_on, y_on = on_manifold_embeddings(
        model,
        batch,
        partner,
        eps_in=config.kong_eps_in,
        eps_y=config.kong_eps_y,
        generator=generator,
    )
    x_off = off_manifold_embeddings(model, batch, eps_out=config.kong_eps_out)
    loss_on = soft_cross_entropy(
        _logits(model, batch, x_on), smooth_targets(y_on, config.label_smoothing)
    )
    log_p_off = F.log_softmax(_logits(model, batch, x_off), dim=-1)
    loss_off = (log_p_off.exp() * log_p_off).sum(-1)  # −entropy
    per_sample = ce + config.kong_beta_on * loss_on + config.kong_beta_off * loss_off
    return weighted_sum(per_sample, batch["weight"]), logits
