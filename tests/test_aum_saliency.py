"""``aum_saliency`` (Park & Caragea, ACL 2022): saliency against autograd, partners on a hand-made
batch, the loss against a hand computation, the AUM split, and
`tdmixup run --strategy aum_saliency`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import SMALL, build_tiny_model_dir, quiet_libraries, require_snli  # noqa: E402
from tdmixup.core.config import MixupConfig  # noqa: E402
from tdmixup.strategies.aum_saliency import (  # noqa: E402
    Half,
    SaliencyColumn,
    aum_saliency_loss,
    logit_saliency,
    saliency_partners,
    split_by_aum,
)
from tdmixup.strategies.step import compute_step  # noqa: E402
from test_mixup import NUM_LABELS, K, grads, make_batch, make_model  # noqa: E402


# --- saliency --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
def test_saliency_equals_autograd_on_a_tiny_model(kind: str) -> None:
    """|∂CE/∂z| by autograd through a tiny BERT's logits = the analytic |softmax(z) − onehot(y)|;
    the authors' batch-mean CE gives the same up to 1/B, which cosine ignores."""
    model = make_model(kind).eval()
    batch = make_batch(kind, 5, 9, seed=4)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    logits.retain_grad()
    F.cross_entropy(logits, batch["labels"], reduction="sum").backward()
    torch.testing.assert_close(logit_saliency(logits, batch["labels"]), logits.grad.abs())
    model.zero_grad()
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    logits.retain_grad()
    F.cross_entropy(
        logits, batch["labels"]
    ).backward()  # the authors' criterion (mean over the batch)
    torch.testing.assert_close(logit_saliency(logits, batch["labels"]) / 5, logits.grad.abs())
    assert logit_saliency(logits, batch["labels"]).shape == (5, NUM_LABELS if kind == "pair" else K)


def test_saliency_of_a_confident_sample_keeps_its_direction() -> None:
    """z = (40, 0, 0), gold 0: 1 − p_0 underflows to 0 in float64, Σ_{k≠0} p_k does not."""
    s = logit_saliency(torch.tensor([[40.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
    other = math.exp(-40) / (1 + 2 * math.exp(-40))
    assert float(s[0, 1]) == pytest.approx(other, rel=1e-12)
    assert float(s[0, 0]) == pytest.approx(2 * other, rel=1e-12)


# --- partners --------------------------------------------------------------------------------
def test_partners_on_a_hand_made_batch() -> None:
    recorded = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    current = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # 0: close to e0
            [0.0, 0.0, 1.0],  # 1: orthogonal to e0 and e1
            [0.1, 0.9, 0.0],  # 2: close to e1
            [1.0, 0.0, 0.0],  # 3: equal to e0, but a weight-0 dummy
            [0.0, 0.0, 2.0],  # 4: same direction as 1 (a tie: the first wins)
        ]
    )
    valid = torch.tensor([True, True, True, False, True])
    similar, dissimilar = saliency_partners(recorded, current, valid)
    assert similar.tolist()[:2] == [0, 2]
    assert dissimilar.tolist()[:2] == [1, 1]
    assert (
        similar[2] == 0 and dissimilar[2] == 0
    )  # an all-zero saliency is equally (un)like every row
    none_valid = saliency_partners(recorded, current, torch.zeros(5, dtype=torch.bool))
    assert none_valid[0].tolist() == [0, 0, 0]


# --- the loss --------------------------------------------------------------------------------
def _log_softmax(z: list[float]) -> list[float]:
    m = max(z)
    log_sum = m + math.log(sum(math.exp(v - m) for v in z))
    return [v - log_sum for v in z]


def _hand_half(
    z: list[list[float]],
    y: list[int],
    w: list[float],
    rec: list[list[float]],
    oz: list[list[float]],
    oy: list[int],
    ow: list[float],
    lam: float,
    eps: float,
    weights: tuple[float, float, float],
) -> tuple[float, int, int]:
    """One half's loss with Python loops; returns (loss, partner of row 0 similar, dissimilar)."""
    c = len(z[0])

    def target(label: int) -> list[float]:
        return [(1 - eps) * (k == label) + eps / c for k in range(c)]

    def saliency(logits: list[float], label: int) -> list[float]:
        p = [math.exp(v) for v in _log_softmax(logits)]
        return [abs(p[k] - (k == label)) for k in range(c)]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * v for x, v in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(v * v for v in b)
        )

    def ce(logits: list[float], t: list[float]) -> float:
        return -sum(tk * lk for tk, lk in zip(t, _log_softmax(logits), strict=True))

    candidates = [j for j in range(len(oz)) if ow[j] > 0]
    total, first = 0.0, (-1, -1)
    for i in range(len(z)):
        sims = [cos(rec[i], saliency(oz[j], oy[j])) for j in candidates]
        s, d = candidates[sims.index(max(sims))], candidates[sims.index(min(sims))]
        if i == 0:
            first = (s, d)
        mixes = []
        for j in (s, d):
            zm = [lam * a + (1 - lam) * b for a, b in zip(z[i], oz[j], strict=True)]
            tm = [lam * a + (1 - lam) * b for a, b in zip(target(y[i]), target(oy[j]), strict=True)]
            mixes.append(ce(zm, tm))
        total += w[i] * (
            weights[0] * ce(z[i], target(y[i])) + weights[1] * mixes[0] + weights[2] * mixes[1]
        )
    return total, first[0], first[1]


def test_loss_against_a_hand_computation() -> None:
    g = torch.Generator().manual_seed(7)
    zh, zl = (
        torch.randn(3, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    yh, yl = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1, 1])
    wh, wl = (
        torch.full((3,), 1 / 3, dtype=torch.float64),
        torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3], dtype=torch.float64),
    )
    rh, rl = (
        torch.rand(3, 3, generator=g, dtype=torch.float64),
        torch.rand(4, 3, generator=g, dtype=torch.float64),
    )
    weights, eps, lam_h, lam_l = (0.7, 0.2, 0.1), 0.1, 0.25, 0.875  # exact in float32 (as λ is)
    config = MixupConfig(
        label_smoothing=eps,
        aum_saliency_ce_weight=weights[0],
        aum_saliency_similar_weight=weights[1],
        aum_saliency_dissimilar_weight=weights[2],
    )
    loss, partners = aum_saliency_loss(
        Half(zh, yh, wh, rh), Half(zl, yl, wl, rl), lam_h, lam_l, config
    )
    h, hs, hd = _hand_half(
        zh.tolist(),
        yh.tolist(),
        wh.tolist(),
        rh.tolist(),
        zl.tolist(),
        yl.tolist(),
        wl.tolist(),
        lam_h,
        eps,
        weights,
    )
    lo, _, _ = _hand_half(
        zl.tolist(),
        yl.tolist(),
        wl.tolist(),
        rl.tolist(),
        zh.tolist(),
        yh.tolist(),
        wh.tolist(),
        lam_l,
        eps,
        weights,
    )
    assert float(loss) == pytest.approx((h + lo) / 2, rel=1e-10)
    assert (int(partners["high_similar"][0]), int(partners["high_dissimilar"][0])) == (hs, hd)
    assert (
        2 not in partners["high_similar"].tolist() + partners["high_dissimilar"].tolist()
    )  # the dummy row


def _with_saliency(batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    c = NUM_LABELS if batch["input_ids"].dim() == 2 else K
    return {
        **batch,
        "saliency": torch.rand(
            len(batch["labels"]), c, generator=torch.Generator().manual_seed(seed)
        ),
    }


@pytest.mark.parametrize("kind", ["pair", "multiple_choice"])
def test_step_trains_and_returns_both_halves(kind: str) -> None:
    model = make_model(kind).train()
    high = _with_saliency(make_batch(kind, 4, 9, seed=1), 1)
    low = _with_saliency(make_batch(kind, 3, 7, seed=2, first_id=100), 2)
    for mode in ("batch", "sample"):
        model.zero_grad(set_to_none=True)
        out = compute_step(
            "aum_saliency",
            model,
            [high, low],
            MixupConfig(lambda_mode=mode),
            torch.Generator().manual_seed(0),
        )
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
        assert out.logits.shape == (7, NUM_LABELS if kind == "pair" else K)
        assert out.sample_ids.tolist() == [0, 1, 2, 3, 100, 101, 102] and out.lam is not None


def test_step_zero_weight_row_changes_nothing() -> None:
    def loss_and_grads(dummy_seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = make_model("pair").eval()
        high, low = (
            _with_saliency(make_batch("pair", 4, 9, seed=1), 1),
            _with_saliency(make_batch("pair", 4, 7, seed=2), 2),
        )
        for batch in (high, low):
            other = make_batch("pair", 4, batch["input_ids"].shape[-1], seed=dummy_seed)
            for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
                batch[key][1] = other[key][3]
            batch["saliency"][1] = torch.rand(
                3, generator=torch.Generator().manual_seed(dummy_seed)
            )
            batch["weight"][1] = 0.0
        out = compute_step(
            "aum_saliency", model, [high, low], MixupConfig(), torch.Generator().manual_seed(0)
        )
        out.loss.backward()
        return out.loss.detach(), grads(model)

    (loss_1, grads_1), (loss_2, grads_2) = loss_and_grads(10), loss_and_grads(20)
    torch.testing.assert_close(loss_1, loss_2)
    for name in grads_1:
        torch.testing.assert_close(grads_1[name], grads_2[name], atol=1e-6, rtol=1e-5, msg=name)


def test_step_needs_the_saliency_column() -> None:
    model = make_model("pair")
    batches = [make_batch("pair", 2, 5, seed=1), make_batch("pair", 2, 5, seed=2)]
    with pytest.raises(ValueError, match="saliency"):
        compute_step("aum_saliency", model, batches, MixupConfig(), torch.Generator())


# --- split and lookup ------------------------------------------------------------------------
def test_split_at_the_median_aum_uses_the_last_epoch_for_saliency() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 10, 3)).astype(np.float32)
    gold = rng.integers(0, 3, 10)
    split = split_by_aum(np.arange(100, 110), gold, logits)
    margins = [
        [z[gold[i]] - max(v for k, v in enumerate(z) if k != gold[i]) for i, z in enumerate(epoch)]
        for epoch in logits.astype(np.float64)
    ]
    np.testing.assert_allclose(split.aum, np.mean(margins, axis=0))
    assert split.threshold == pytest.approx(float(np.median(split.aum)))
    assert split.high.sum() == 5 and (split.aum[split.high] >= split.threshold).all()
    expected = logit_saliency(
        torch.from_numpy(logits[-1].astype(np.float64)), torch.from_numpy(gold)
    ).numpy()
    np.testing.assert_allclose(split.saliency, expected)
    assert split_by_aum(np.arange(10), gold, logits, quantile=0.8).high.sum() == 2
    with pytest.raises(ValueError, match="quantile"):
        split_by_aum(np.arange(10), gold, logits, quantile=1.0)


def test_saliency_column_looks_rows_up_by_sample_id() -> None:
    column = SaliencyColumn(np.array([30, 10, 20]), np.array([[3.0, 0], [1.0, 0], [2.0, 0]]))
    got = column({"sample_id": torch.tensor([20, 30, 10, 20])})["saliency"]
    assert got[:, 0].tolist() == [2.0, 3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="no recorded saliency"):
        column({"sample_id": torch.tensor([15])})


# --- end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_snli()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def test_run_strategy_aum_saliency(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdmixup.cli.commands import main
    from tdmixup.dynamics.table import read_dynamics

    out = tmp_path / "run"
    args = [
        "run",
        "--strategy",
        "aum_saliency",
        "--output-dir",
        str(out),
        "--model",
        tiny_model,
        *SMALL,
    ]
    assert main(args) == 0
    assert not list(out.glob("aum_easy*")), "no threshold-sample runs for aum_saliency"
    split = json.loads((out / "aum_saliency_split/done.json").read_text())
    assert split["quantile"] == 0.5 and split["n"] == 48 and split["n_high"] + split["n_low"] == 48
    done = json.loads((out / "stage4_aum_saliency/done.json").read_text())
    assert done["strategy"] == "aum_saliency" and done["train_sizes"] == [
        split["n_high"],
        split["n_low"],
    ]
    assert [h["steps"] for h in done["history"]] == [
        3,
        3,
    ]  # one pass over the larger half of ~24 at batch 8
    table = pd.read_parquet(out / "aum_saliency_split/split.parquet")
    dyn = read_dynamics(out / "stage1_full/dynamics.parquet")
    expected = logit_saliency(
        torch.tensor(dyn.logits[-1], dtype=torch.float64), torch.tensor(dyn.gold)
    ).numpy()
    np.testing.assert_allclose(
        table[["saliency_0", "saliency_1", "saliency_2"]].to_numpy(), expected, rtol=1e-6
    )
    report = (out / "report.md").read_text()
    assert (
        "AUM and saliency" in report
        and "lowest ECE on `snli_test`" in report
        and "after temperature scaling" in report
    )
    # the split's quantile may change from stage 'aum' on; label smoothing (read by stage 1) only
    # from 'full'
    assert main([*args, "--from-stage", "tdmixup", "--aum-saliency-quantile", "0.25"]) == 0
    assert json.loads((out / "aum_saliency_split/done.json").read_text())["n_high"] == 36
    assert (
        main(
            [
                *args,
                "--aum-saliency-quantile",
                "0.25",
                "--from-stage",
                "tdmixup",
                "--label-smoothing",
                "0.1",
            ]
        )
        == 2
    )
    assert "label_smoothing" in capsys.readouterr().err
