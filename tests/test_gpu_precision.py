"""GPU precision and speed, checked on the CPU: no host-device sync in a training step (counted
by :mod:`_sync_count`), partners drawn on the device, TF32 and the bf16/fp16 rules with a mocked
CUDA capability. The same on a real GPU: ``tests/test_cuda.py`` (marker ``cuda``)."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sync_count import count_syncs  # noqa: E402
from _tiny import (  # noqa: E402
    build_tiny_model_dir,
    quiet_libraries,
    require_minilm,
    require_snli,
    tokenized_snli,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_snli()
    require_minilm()
    quiet_libraries()
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _loop(tiny_dir: Path, tmp_path: Path, strategy: str, max_grad_norm: float = 1.0) -> object:
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.model.classifier import build_classifier
    from tdmixup.training import loop as training

    data = tokenized_snli(16)
    sets = (
        [data]
        if strategy != "tdmixup"
        else [data.subset(data.sample_ids[:8]), data.subset(data.sample_ids[8:])]
    )
    model = build_classifier(ModelConfig(name_or_path=str(tiny_dir)), "pair", 3)
    return training._start(
        model,
        sets,
        TrainConfig(
            epochs=1, batch_size=4, learning_rate=1e-3, seed=0, max_grad_norm=max_grad_norm
        ),
        MixupConfig(strategy=strategy),  # type: ignore[arg-type]
        tmp_path,
        training.make_accelerator(),
        resume=False,
        batch_columns=None,
    )


@pytest.mark.parametrize("strategy", ["none", "mixup", "kong", "tdmixup", "random_pairs"])
def test_a_training_step_makes_no_host_device_sync(
    tiny_dir: Path, tmp_path: Path, strategy: str, one_thread: None
) -> None:
    """One optimiser step and its bookkeeping (loss, accuracy, train-pass logits) leave every
    value on the device: the NaN/inf guard, the loss sum, the partners and Kong's noise no longer
    read a device value on the host (5-7 syncs per step before)."""
    from tdmixup.training import loop as training
    from tdmixup.training.epoch_totals import EpochTotals

    loop = _loop(tiny_dir, tmp_path, strategy)
    plan = training.plan_epoch(
        loop.train_sets, loop.cfg, 0, 1, 0, loop.batch_size, per_set=loop.per_set
    )
    zero = torch.zeros((), dtype=torch.float64)
    totals = EpochTotals(hits=zero, judged=zero)
    for step, planned in enumerate(plan[:2]):
        batches = training._collate_step(loop, planned)
        with count_syncs() as counter:
            counter.mark_device(list(loop.model.parameters()), batches, totals.hits)
            out = training._optimiser_step(loop, batches, 0, step + 1)
            totals.add(out, batches, keep_logits=strategy != "mixup")
        # transformers' SDPA mask check (masking_utils: is the padding mask all ones?) reads one
        # value per forward pass; it is the library's, not tdmixup's
        assert counter.ours == [], counter.ours
    loop.guard.check(loop.accelerator, 0, loop.ckpt)  # one read per log interval: all finite
    assert np.isfinite(totals.mean_loss()) and totals.steps == 2


def test_the_sync_counter_sees_the_old_kinds_of_sync() -> None:
    """The counter is not blind: ``float()``, ``.cpu()``, ``nonzero`` and boolean indexing of a
    device tensor count; host values (a CPU generator's draws) do not."""
    x = torch.randn(4)
    with count_syncs() as counter:
        counter.mark_device(x)
        y = x * 2
        float(y.sum())
        y.cpu()
        torch.nonzero(y > 0)
        _ = y[y > 0]
        g = torch.Generator().manual_seed(0)
        float(torch.rand((), generator=g))
    assert [s[0] for s in counter.syncs] == [
        "aten::_local_scalar_dense",
        "Tensor.cpu",
        "aten::nonzero",
        "aten::index",
    ]


def test_aum_saliency_loss_makes_no_sync() -> None:
    from tdmixup.core.config import MixupConfig
    from tdmixup.strategies.aum_saliency import Half, aum_saliency_loss

    g = torch.Generator().manual_seed(0)

    def half(weight: list[float]) -> Half:
        n = len(weight)
        return Half(
            torch.randn(n, 3, generator=g, requires_grad=True),
            torch.randint(0, 3, (n,), generator=g),
            torch.tensor(weight),
            torch.rand(n, 3, generator=g),
        )

    for low_weight in ([1.0, 1.0, 0.0], [0.0, 0.0, 0.0]):  # no valid partner: no host branch
        high, low = half([1.0, 1.0, 1.0]), half(low_weight)
        with count_syncs() as counter:
            counter.mark_device(high.logits, high.labels, high.weight, high.recorded)
            counter.mark_device(low.logits, low.labels, low.weight, low.recorded)
            loss, _ = aum_saliency_loss(high, low, 0.7, 0.6, MixupConfig())
        assert counter.ours == [] and torch.isfinite(loss)


def test_partner_index_permutes_the_real_rows_and_keeps_dummies() -> None:
    from tdmixup.strategies.mixing import partner_index

    weight = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    real = [0, 2, 3, 5]
    seen: set[tuple[int, ...]] = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        index = partner_index(weight, g).tolist()
        assert sorted(index[r] for r in real) == real and index[1] == 1 and index[4] == 4
        assert all(index[r] != r for r in real)  # a real row is never its own partner
        row, cycle = real[0], []
        for _ in real:  # one cycle through every real row: the shuffled order, then back
            cycle.append(row)
            row = index[row]
        assert sorted(cycle) == real and row == real[0]
        seen.add(tuple(index))
    assert len(seen) == 6  # every one of the (4 - 1)! cyclic orders of the 4 real rows appears
    assert partner_index(weight, reverse=True).tolist() == [5, 1, 3, 2, 4, 0]
    assert partner_index(torch.zeros(3), g).tolist() == [0, 1, 2]


def test_kong_noise_on_the_generators_device_is_unchanged() -> None:
    from tdmixup.strategies.kong import uniform_on

    x = torch.zeros(2, 3, 4)
    a = uniform_on(x, torch.Generator().manual_seed(5))
    b = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.device == x.device


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """torch.cuda as if one GPU of the given ``capability`` were present."""
    gpu: dict[str, object] = {"capability": (9, 0), "name": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: gpu["capability"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: gpu["name"])
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    yield gpu
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
    torch.set_float32_matmul_precision(before[2])


def test_tf32_is_enabled_on_ampere_and_later_and_recorded(fake_cuda: dict[str, object]) -> None:
    from tdmixup.core.runio import environment_info
    from tdmixup.training.optim import enable_tf32

    fake_cuda["capability"] = (7, 0)  # V100: no TF32 units
    assert enable_tf32("cuda") is False and not torch.backends.cuda.matmul.allow_tf32
    assert enable_tf32("cpu") is False
    fake_cuda["capability"] = (9, 0)
    assert enable_tf32("cuda") is True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high"
    assert environment_info()["tf32"] == {"matmul": True, "cudnn": True}


@pytest.mark.parametrize(
    ("capability", "warned"), [((7, 0), True), ((7, 5), True), ((8, 0), False), ((9, 0), False)]
)
def test_bf16_on_a_gpu_without_native_bfloat16_warns_once_and_suggests_fp16(
    fake_cuda: dict[str, object],
    caplog: pytest.LogCaptureFixture,
    capability: tuple[int, int],
    warned: bool,
) -> None:
    from tdmixup.core.config import TrainConfig
    from tdmixup.training import optim

    fake_cuda["capability"] = capability
    fake_cuda["name"] = "Tesla T4"
    with caplog.at_level(logging.WARNING, logger="tdmixup.training.loop"):
        assert optim.warn_if_bf16_is_slow(TrainConfig(bf16=True), "cuda") is warned
        assert optim.warn_if_bf16_is_slow(TrainConfig(bf16=False), "cuda") is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == int(warned)
    if warned:
        assert "Tesla T4" in lines[0] and "emulated" in lines[0] and "--fp16" in lines[0]
        assert "\n" not in lines[0]


def test_fp16_is_offered_and_refused_where_it_cannot_work(tmp_path: Path) -> None:
    from tdmixup.cli.commands import build_parser
    from tdmixup.cli.options import config_from_args
    from tdmixup.core.config import TrainConfig
    from tdmixup.training.loop import make_accelerator

    readme = (Path(__file__).resolve().parents[1] / "docs/guides/at-scale.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("tdmixup run") and "--fp16" in x)
    ns = build_parser().parse_args(shlex.split(line.split("  #", 1)[0])[1:])
    cfg = config_from_args(ns)
    assert cfg.train.fp16 is True and cfg.train.bf16 is False
    with pytest.raises(ValueError, match="--bf16 and --fp16 are exclusive"):
        TrainConfig(bf16=True, fp16=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--fp16 needs a CUDA GPU"):
            make_accelerator(mixed_precision="fp16")


def test_predict_logits_autocasts_with_the_runs_precision(tiny_dir: Path) -> None:
    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import build_classifier
    from tdmixup.model.predict import predict_logits
    from tdmixup.training.loop import make_accelerator

    model = build_classifier(ModelConfig(name_or_path=str(tiny_dir)), "pair", 3)
    seen: list[torch.dtype] = []
    model.head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    data = tokenized_snli(8)
    acc = make_accelerator()
    _, z32 = predict_logits(model, data, batch_size=8, accelerator=acc)
    _, z16 = predict_logits(model, data, batch_size=8, accelerator=acc, precision="bf16")
    assert seen == [torch.float32, torch.bfloat16]
    assert z16.dtype == np.float32 and np.abs(z16 - z32).max() < 0.05
    with pytest.raises(ValueError, match="precision must be"):
        predict_logits(model, data, batch_size=8, accelerator=acc, precision="int8")


def test_batches_go_to_cuda_from_pinned_memory_without_blocking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``to_device`` pins each tensor and copies it with ``non_blocking=True`` to a CUDA device
    (mocked: the copy is recorded, not made); on CPU it leaves the tensors alone."""
    from tdmixup.model.predict import to_device

    calls: list[tuple[str, object]] = []
    real_to = torch.Tensor.to

    def pin(self: torch.Tensor) -> torch.Tensor:
        calls.append(("pin", None))
        return self

    def to(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        device = torch.device(args[0]) if args and isinstance(args[0], str | torch.device) else None
        if device is not None and device.type == "cuda":
            calls.append(("to", kwargs.get("non_blocking")))
            return self
        return real_to(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "weight": torch.ones(2)}
    to_device(batch, "cuda")
    assert calls == [("pin", None), ("to", True)] * 2
    calls.clear()
    assert to_device(batch, "cpu")["weight"] is batch["weight"] and calls == []
