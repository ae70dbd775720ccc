"""``MixupConfig.label_smoothing``: the smoothed CE of every strategy against torch and by hand."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tdmixup.core.config import MixupConfig  # noqa: E402
from tdmixup.strategies.mixing import (  # noqa: E402
    hard_cross_entropy,
    mix_tensors,
    one_hot,
    sample_lambda,
    smooth_targets,
    soft_cross_entropy,
)
from tdmixup.strategies.step import compute_step  # noqa: E402
from test_mixup import batches_for, make_batch, make_model  # noqa: E402


def test_smoothed_ce_by_hand_and_torch() -> None:
    """z = (2, 0, −1), gold 0, ε = 0.1, C = 3: target (0.9333, 0.0333, 0.0333)."""
    z = torch.tensor([[2.0, 0.0, -1.0]])
    log_p = [v - math.log(math.exp(2) + 1 + math.exp(-1)) for v in (2.0, 0.0, -1.0)]
    by_hand = -((1 - 0.1 + 0.1 / 3) * log_p[0] + 0.1 / 3 * log_p[1] + 0.1 / 3 * log_p[2])
    assert float(hard_cross_entropy(z, torch.tensor([0]), 0.1)) == pytest.approx(by_hand, rel=1e-6)
    assert float(F.cross_entropy(z, torch.tensor([0]), label_smoothing=0.1)) == pytest.approx(
        by_hand, rel=1e-6
    )
    smoothed = smooth_targets(one_hot(torch.tensor([0]), 3), 0.1)
    torch.testing.assert_close(smoothed, torch.tensor([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]]))
    assert float(soft_cross_entropy(z, smoothed)) == pytest.approx(by_hand, rel=1e-6)


def test_smoothing_before_or_after_mixing_is_the_same() -> None:
    y_a, y_b = one_hot(torch.tensor([0, 2]), 3), one_hot(torch.tensor([1, 2]), 3)
    lam = torch.tensor([0.3, 0.8])
    torch.testing.assert_close(
        mix_tensors(smooth_targets(y_a, 0.2), smooth_targets(y_b, 0.2), lam),
        smooth_targets(mix_tensors(y_a, y_b, lam), 0.2),
    )


@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
def test_none_step_equals_torch_label_smoothing(kind: str) -> None:
    model = make_model(kind).eval()
    batch = make_batch(kind, 4, 9, seed=1)
    out = compute_step("none", model, [batch], MixupConfig(label_smoothing=0.2), torch.Generator())
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    expected = F.cross_entropy(
        logits, batch["labels"], label_smoothing=0.2
    )  # mean = Σ w·CE with w = 1/B
    torch.testing.assert_close(out.loss, expected)


def test_tdmixup_step_smooths_mixed_and_unmixed_targets() -> None:
    model = make_model("pair").eval()
    easy, amb = make_batch("pair", 4, 9, seed=1), make_batch("pair", 4, 7, seed=2, first_id=100)
    eps = 0.1
    config = MixupConfig(strategy="tdmixup", label_smoothing=eps)
    lam = sample_lambda(0.4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = compute_step("tdmixup", model, [easy, amb], config, torch.Generator().manual_seed(3))
        feat_e = model.features(easy["input_ids"], easy["attention_mask"], easy["token_type_ids"])
        feat_a = model.features(amb["input_ids"], amb["attention_mask"], amb["token_type_ids"])
        logits_e, logits_a = model.classify(feat_e), model.classify(feat_a)
        mixed_logits = model.classify(lam * feat_e + (1 - lam) * feat_a)
    c = 3
    smooth_e = (1 - eps) * one_hot(easy["labels"], c) + eps / c
    smooth_a = (1 - eps) * one_hot(amb["labels"], c) + eps / c
    mixed = soft_cross_entropy(mixed_logits, lam * smooth_e + (1 - lam) * smooth_a).mean()
    unmixed = (
        soft_cross_entropy(logits_e, smooth_e).mean()
        + soft_cross_entropy(logits_a, smooth_a).mean()
    )
    torch.testing.assert_close(out.loss, (mixed + unmixed) / 3)


@pytest.mark.parametrize(
    "strategy", ["none", "mixup", "manifold", "kong", "tdmixup", "random_pairs"]
)
def test_every_strategy_feels_label_smoothing(strategy: str) -> None:
    """ε > 0 changes every strategy's loss (none ignores the flag), and ε = 0 is the old loss."""
    model = make_model("pair").eval()

    def loss(eps: float) -> float:
        batches = batches_for(strategy, "pair")
        config = MixupConfig(strategy=strategy, label_smoothing=eps)  # type: ignore[arg-type]
        return float(
            compute_step(
                strategy, model, batches, config, torch.Generator().manual_seed(0)
            ).loss.detach()
        )

    assert loss(0.3) != pytest.approx(loss(0.0), rel=1e-4)


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_label_smoothing_is_validated(bad: float) -> None:
    with pytest.raises(ValueError, match="--label-smoothing"):
        replace(MixupConfig(), label_smoothing=bad)
