"""MixUp primitives and the training step of every strategy, on a tiny random BERT."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from tdmixup.core.config import MixupConfig
from tdmixup.model.classifier import Classifier
from tdmixup.strategies import kong, mixing
from tdmixup.strategies import step as mixup
from tdmixup.strategies.mixing import (
    mix_embeddings,
    mix_features,
    mixed_attention_mask,
    one_hot,
    pad_to_length,
    partner_index,
    sample_lambda,
    soft_cross_entropy,
    union_attention_mask,
)
from tdmixup.strategies.step import compute_step

VOCAB, NUM_LABELS, K = 60, 3, 4
STRATEGIES = ["none", "mixup", "manifold", "kong", "tdmixup", "random_pairs"]


def make_model(kind: str) -> Classifier:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return Classifier(BertModel(config, add_pooling_layer=False), kind, NUM_LABELS)


def make_batch(
    kind: str, rows: int, length: int, *, seed: int, first_id: int = 0
) -> dict[str, torch.Tensor]:
    """Random tokens; row i has ``length − i % 3`` real tokens (so rows have padding)."""
    g = torch.Generator().manual_seed(seed)
    shape = (rows, length) if kind == "pair" else (rows, K, length)
    ids = torch.randint(1, VOCAB, shape, generator=g)
    real = torch.tensor([length - i % 3 for i in range(rows)]).view(rows, *([1] * (len(shape) - 1)))
    mask = (torch.arange(length) < real).long().expand(shape)
    return {
        "input_ids": ids * mask,
        "attention_mask": mask,
        "token_type_ids": (torch.arange(length) >= length // 2).long().expand(shape) * mask,
        "labels": torch.randint(0, NUM_LABELS if kind == "pair" else K, (rows,), generator=g),
        "sample_id": torch.arange(first_id, first_id + rows),
        "weight": torch.full((rows,), 1.0 / rows),
    }


def batches_for(strategy: str, kind: str, rows: int = 4) -> list[dict[str, torch.Tensor]]:
    first = make_batch(kind, rows, 9, seed=1)
    if strategy in ("tdmixup", "random_pairs"):  # random_pairs: two batches of easy ∪ ambiguous
        return [first, make_batch(kind, rows, 7, seed=2, first_id=100)]
    return [first]


def grads(model: Classifier) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --- primitives ------------------------------------------------------------------------------
def test_sample_lambda_beta_moments_and_determinism() -> None:
    alpha = 0.4
    lam = sample_lambda(alpha, 20000, generator=torch.Generator().manual_seed(0))
    assert lam.shape == (20000,) and lam.min() >= 0 and lam.max() <= 1
    assert abs(lam.mean().item() - 0.5) < 0.01
    assert abs(lam.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.005  # Var Beta(α, α)
    a = sample_lambda(alpha, generator=torch.Generator().manual_seed(7))
    b = sample_lambda(alpha, generator=torch.Generator().manual_seed(7))
    assert a.shape == () and torch.equal(a, b)
    assert torch.equal(sample_lambda(0.0, (2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError, match="alpha"):
        sample_lambda(-1.0)


def test_sample_lambda_leaves_the_global_rng_alone_and_advances_its_generator_once() -> None:
    """λ is drawn on a forked CPU RNG: dropout's global stream is unchanged, and the step's
    generator moves on by exactly one number per call (so the rest of the step's draws stay put)."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    g, reference = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    first, again = sample_lambda(0.4, 4, generator=g), sample_lambda(0.4, 4, generator=g)
    assert torch.equal(torch.get_rng_state(), before)
    torch.randint(0, 2**62, (), generator=reference)
    torch.randint(0, 2**62, (), generator=reference)
    assert torch.equal(g.get_state(), reference.get_state())
    assert not torch.equal(first, again)


def test_per_sample_lambda_shape() -> None:
    g = torch.Generator().manual_seed(0)
    assert mixing.draw_lambda(MixupConfig(lambda_mode="sample"), 5, g).shape == (5,)
    assert mixing.draw_lambda(MixupConfig(lambda_mode="batch"), 5, g).shape == ()


def test_soft_cross_entropy_equals_ce_for_one_hot() -> None:
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 0, 2])
    expected = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot(labels, 4)), expected)


def test_mix_tensors_broadcasts_per_sample_lambda() -> None:
    a, b = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    out = mixing.mix_tensors(a, b, torch.tensor([0.25, 0.75]))
    assert torch.allclose(out[0], torch.full((3, 4), 0.25)) and torch.allclose(
        out[1], torch.full((3, 4), 0.75)
    )
    assert torch.allclose(
        mix_features(a[:, 0], b[:, 0], torch.tensor([1.0]), num_choices=2), torch.ones(2, 4)
    )


def test_padding_and_union_mask() -> None:
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    assert torch.equal(
        pad_to_length(ids, 5, value=9), torch.tensor([[5, 6, 0, 9, 9], [7, 0, 0, 9, 9]])
    )
    with pytest.raises(ValueError, match="shorter"):
        pad_to_length(ids, 2)
    mask_a = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mask_b = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 1, 0]])
    union = union_attention_mask(mask_a, mask_b)
    assert torch.equal(union, torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]]))
    assert torch.equal(union, union_attention_mask(mask_b, mask_a))
    mixed = mixed_attention_mask(mask_a, mask_b, torch.tensor([1.0, 0.5]))
    assert torch.equal(
        mixed, torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    )  # λ=1 keeps a's mask
    assert torch.equal(mixed_attention_mask(mask_a, mask_b, 0.0), mask_b)


def test_partner_index_skips_dummy_rows() -> None:
    weight = torch.tensor([0.25, 0.0, 0.25, 0.25, 0.0])
    index = partner_index(weight, torch.Generator().manual_seed(0))
    assert index[1] == 1 and index[4] == 4
    assert sorted(index[[0, 2, 3]].tolist()) == [0, 2, 3]


@pytest.mark.parametrize("rows", [2, 3, 16])
def test_random_partners_are_never_the_row_itself(rows: int) -> None:
    """Issue 21 (3): with two real rows a random permutation left both unmixed half the time
    (and one row in 16 of a batch of 16); partners are now the other real rows, uniformly."""
    weight = torch.cat([torch.ones(rows), torch.zeros(1)])
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(rows, rows)
    for _ in range(400):
        index = partner_index(weight, g)
        assert index[rows] == rows  # the dummy keeps itself
        assert sorted(index[:rows].tolist()) == list(range(rows))
        assert not (index[:rows] == torch.arange(rows)).any()
        seen[torch.arange(rows), index[:rows]] += 1
    off_diagonal = seen[~torch.eye(rows, dtype=torch.bool)]
    assert off_diagonal.min() > 0  # every other row is drawn


# --- λ = 1 is the identity -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
@pytest.mark.parametrize("partner_length", [6, 11])  # partner shorter / longer than the sample
def test_mix_embeddings_lambda_one_is_identity(kind: str, partner_length: int) -> None:
    model = make_model(kind).eval()
    a, b = make_batch(kind, 3, 9, seed=1), make_batch(kind, 3, partner_length, seed=2)
    with torch.no_grad():
        plain = model.features(a["input_ids"], a["attention_mask"], a["token_type_ids"])
        mixed = mix_embeddings(model, a, b, 1.0)
        per_sample = mix_embeddings(model, a, b, torch.ones(3))
        swapped = mix_embeddings(model, b, a, 0.0)
    torch.testing.assert_close(mixed, plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(per_sample, plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(swapped, plain, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
@pytest.mark.parametrize("mix_at", ["cls", "embeddings"])
def test_tdmixup_with_lambda_one_trains_on_easy_rows(kind: str, mix_at: str) -> None:
    """α = 0 (λ = 1): the mixed samples are the easy rows, so the loss is known in closed form."""
    model = make_model(kind).eval()
    easy, amb = make_batch(kind, 4, 9, seed=1), make_batch(kind, 3, 11, seed=2, first_id=100)
    config = MixupConfig(strategy="tdmixup", alpha=0.0, mix_at=mix_at)
    with torch.no_grad():
        out = compute_step("tdmixup", model, [easy, amb], config, torch.Generator().manual_seed(0))
        ce_e = F.cross_entropy(
            model(**mixing.model_inputs(easy)).logits, easy["labels"], reduction="none"
        )
        ce_a = F.cross_entropy(
            model(**mixing.model_inputs(amb)).logits, amb["labels"], reduction="none"
        )
    mixed_w = torch.minimum(easy["weight"][:3], amb["weight"])
    expected = (
        (mixed_w * ce_e[:3]).sum() + (easy["weight"] * ce_e).sum() + (amb["weight"] * ce_a).sum()
    ) / 3
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=1e-5)
    assert out.lam == 1.0
    assert out.logits.shape == (7, NUM_LABELS if kind == "pair" else K)
    assert out.sample_ids.tolist() == [0, 1, 2, 3, 100, 101, 102]


# --- tdmixup pairing, truncation and loss weights --------------------------------------------
# random_pairs has TDMixUp's structure (two batches, row i × row i, the same loss); only the
# loop's choice of batches differs (both from easy ∪ ambiguous)
@pytest.mark.parametrize("strategy", ["tdmixup", "random_pairs"])
@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
def test_tdmixup_pairs_easy_rows_with_ambiguous_rows(
    kind: str, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(kind).eval()
    easy, amb = make_batch(kind, 4, 9, seed=1), make_batch(kind, 3, 7, seed=2, first_id=100)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def spy(
        feat_a: torch.Tensor, feat_b: torch.Tensor, lam: torch.Tensor, **kw: object
    ) -> torch.Tensor:
        calls.append((feat_a.detach(), feat_b.detach()))
        return mix_features(feat_a, feat_b, lam, **kw)

    monkeypatch.setattr(mixup, "mix_features", spy)
    compute_step(
        strategy,
        model,
        [easy, amb],
        MixupConfig(strategy=strategy),
        torch.Generator().manual_seed(0),
    )  # type: ignore[arg-type]
    with torch.no_grad():
        feat_e = model.features(easy["input_ids"], easy["attention_mask"], easy["token_type_ids"])
        feat_a = model.features(amb["input_ids"], amb["attention_mask"], amb["token_type_ids"])
    n = 3 if kind == "pair" else 3 * K  # truncated to the shorter (ambiguous) batch
    ((mixed_a, mixed_b),) = calls
    torch.testing.assert_close(mixed_a, feat_e[:n])
    torch.testing.assert_close(mixed_b, feat_a[:n])


@pytest.mark.parametrize("strategy", ["tdmixup", "random_pairs"])
def test_tdmixup_loss_weights_and_normalisation(strategy: str) -> None:
    model = make_model("pair").eval()
    easy, amb = make_batch("pair", 4, 9, seed=1), make_batch("pair", 4, 7, seed=2, first_id=100)
    g = torch.Generator().manual_seed(3)
    lam = sample_lambda(0.4, generator=torch.Generator().manual_seed(3))
    config = MixupConfig(strategy=strategy, mixed_weight=0.2, unmixed_weight=0.5)  # type: ignore[arg-type]
    with torch.no_grad():
        out = compute_step(strategy, model, [easy, amb], config, g)  # type: ignore[arg-type]
        feat_e = model.features(easy["input_ids"], easy["attention_mask"], easy["token_type_ids"])
        feat_a = model.features(amb["input_ids"], amb["attention_mask"], amb["token_type_ids"])
        logits_e, logits_a = model.classify(feat_e), model.classify(feat_a)
        mixed_logits = model.classify(lam * feat_e + (1 - lam) * feat_a)
    targets = lam * one_hot(easy["labels"], 3) + (1 - lam) * one_hot(amb["labels"], 3)
    w = easy["weight"]
    mixed = (w * soft_cross_entropy(mixed_logits, targets)).sum()
    unmixed = (w * F.cross_entropy(logits_e, easy["labels"], reduction="none")).sum() + (
        w * F.cross_entropy(logits_a, amb["labels"], reduction="none")
    ).sum()
    torch.testing.assert_close(out.loss, (0.2 * mixed + 0.5 * unmixed) / (0.2 + 2 * 0.5))
    assert out.lam == pytest.approx(float(lam))


# --- weight-0 dummy rows ---------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_weight_row_changes_nothing(strategy: str) -> None:
    kind = "pair"
    config = MixupConfig(
        strategy=strategy, mix_at="embeddings" if strategy == "random_pairs" else "cls"
    )

    def loss_and_grads(dummy_seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = make_model(kind).eval()
        batches = batches_for(strategy, kind)
        for batch in batches:
            other = make_batch(kind, 4, batch["input_ids"].shape[-1], seed=dummy_seed)
            for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
                batch[key][1] = other[key][3]  # new content for row 1 ...
            batch["weight"][1] = 0.0  # ... which is a dummy
        out = compute_step(strategy, model, batches, config, torch.Generator().manual_seed(0))
        out.loss.backward()
        return out.loss.detach(), grads(model)

    loss_1, grads_1 = loss_and_grads(10)
    loss_2, grads_2 = loss_and_grads(20)
    torch.testing.assert_close(loss_1, loss_2)
    assert grads_1.keys() == grads_2.keys()
    for name in grads_1:
        torch.testing.assert_close(grads_1[name], grads_2[name], atol=1e-6, rtol=1e-5, msg=name)


# --- Kong et al. -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
def test_kong_perturbations_stay_in_balls_and_leave_no_parameter_grads(kind: str) -> None:
    model = make_model(kind).train()
    batch = make_batch(kind, 4, 9, seed=1)
    eps_in, eps_out = 1e-2, 1e-1
    x = kong.word_embeddings(model, batch)
    partner = partner_index(batch["weight"], reverse=True)
    x_on, y_on = kong.on_manifold_embeddings(
        model, batch, partner, eps_in=eps_in, eps_y=0.1, generator=torch.Generator().manual_seed(0)
    )
    x_off = kong.off_manifold_embeddings(model, batch, eps_out=eps_out)
    assert model.training  # the eval-mode search restores the mode
    assert all(p.grad is None for p in model.parameters())
    assert not x_on.requires_grad and not x_off.requires_grad
    assert (x_on - x).abs().max() <= eps_in * (1 + 1e-4)
    assert (x_off - x).abs().max() <= eps_out * (1 + 1e-4)
    assert (x_off - x).abs().max() >= eps_out * (1 - 1e-4)  # a full FGSM step somewhere
    c = NUM_LABELS if kind == "pair" else K
    expected_y = 0.9 * one_hot(batch["labels"], c) + 0.1 * one_hot(batch["labels"].flip(0), c)
    torch.testing.assert_close(y_on, expected_y)


def test_kong_on_manifold_step_reduces_cosine_distance() -> None:
    model = make_model("pair").eval()
    batch = make_batch("pair", 4, 9, seed=1)
    partner = partner_index(batch["weight"], reverse=True)
    x = kong.word_embeddings(model, batch)
    mask, tt = batch["attention_mask"], batch["token_type_ids"]
    x_on, _ = kong.on_manifold_embeddings(
        model, batch, partner, eps_in=1e-3, eps_y=0.1, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        target = kong._mean_hidden(model, x[partner], mask[partner], tt[partner])
        before = 1 - F.cosine_similarity(kong._mean_hidden(model, x, mask, tt), target)
        after = 1 - F.cosine_similarity(kong._mean_hidden(model, x_on, mask, tt), target)
    assert (after < before).all()


def test_kong_loss_decomposes() -> None:
    """The total is CE + β_on·ℓ_on + β_off·ℓ_off; with β = 0 it is the plain CE."""
    model = make_model("pair").eval()
    batch = make_batch("pair", 4, 9, seed=1)
    config = MixupConfig(strategy="kong", kong_beta_on=0.0, kong_beta_off=0.0)
    out = compute_step("kong", model, [batch], config, torch.Generator().manual_seed(0))
    plain = compute_step("none", model, [batch], config, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss, plain.loss)
    full = compute_step(
        "kong", model, [batch], dataclasses.replace(config, kong_beta_off=1.0), torch.Generator()
    )
    assert full.loss < out.loss  # ℓ_off = −entropy < 0


# --- every strategy, pair and multiple choice ------------------------------------------------
@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains(strategy: str, kind: str) -> None:
    model = make_model(kind).train()
    batches = batches_for(strategy, kind)
    for mix_at in ("cls", "embeddings") if strategy in ("tdmixup", "random_pairs") else ("cls",):
        model.zero_grad(set_to_none=True)
        config = MixupConfig(
            strategy=strategy, mix_at=mix_at, lambda_mode="sample" if mix_at == "cls" else "batch"
        )
        out = compute_step(strategy, model, batches, config, torch.Generator().manual_seed(0))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
        if out.logits is not None:
            rows = sum(len(b["labels"]) for b in batches)
            assert out.logits.shape == (rows, NUM_LABELS if kind == "pair" else K)
            assert not out.logits.requires_grad and out.sample_ids.shape == (rows,)
        assert (out.lam is None) == (strategy in ("none", "kong"))


def test_compute_step_validates_its_input() -> None:
    model = make_model("pair")
    batch = make_batch("pair", 2, 5, seed=1)
    with pytest.raises(ValueError, match="unknown strategy"):
        compute_step("cutmix", model, [batch], MixupConfig(), torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 batch"):
        compute_step("tdmixup", model, [batch], MixupConfig(), torch.Generator())
    with pytest.raises(ValueError, match="lacks"):
        compute_step(
            "none",
            model,
            [{k: v for k, v in batch.items() if k != "weight"}],
            MixupConfig(),
            torch.Generator(),
        )
