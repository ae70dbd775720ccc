"""The GPU rules on a real CUDA device (marker ``cuda``; skipped without one). CPU-side versions
of each: ``tests/test_gpu_precision.py``. Run by ``benchmarks/gpu/run_all.sh`` (part a)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import (  # noqa: E402
    build_tiny_model_dir,
    quiet_libraries,
    require_minilm,
    require_snli,
    tokenized_snli,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_snli()
    require_minilm()
    quiet_libraries()
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def fresh_accelerate() -> Iterator[None]:
    """Accelerate keeps one state per process: start and end each test with none."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def _model(tiny_dir: Path) -> torch.nn.Module:
    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import build_classifier

    return build_classifier(ModelConfig(name_or_path=str(tiny_dir)), "pair", 3)


def test_make_accelerator_turns_tf32_on(fresh_accelerate: None) -> None:
    from tdmixup.core.runio import environment_info
    from tdmixup.training.loop import make_accelerator

    acc = make_accelerator()
    assert acc.device.type == "cuda"
    native = torch.cuda.get_device_capability()[0] >= 8
    assert torch.backends.cuda.matmul.allow_tf32 is native
    assert environment_info()["tf32"]["matmul"] is native


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_predict_logits_autocasts_on_the_gpu(
    tiny_dir: Path, fresh_accelerate: None, precision: str
) -> None:
    from tdmixup.model.predict import predict_logits
    from tdmixup.training.loop import make_accelerator

    acc = make_accelerator()
    model = _model(tiny_dir).to(acc.device)
    seen: list[torch.dtype] = []
    model.head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    _, logits = predict_logits(
        model, tokenized_snli(32), batch_size=16, accelerator=acc, precision=precision
    )
    half = torch.bfloat16 if precision == "bf16" else torch.float16
    assert seen == [half, half] and logits.dtype.name == "float32" and logits.shape == (32, 3)


def test_fp16_trains_with_a_gradient_scaler(
    tiny_dir: Path, tmp_path: Path, fresh_accelerate: None
) -> None:
    from tdmixup.core.config import MixupConfig, TrainConfig
    from tdmixup.training.loop import make_accelerator, seed_everything, train

    acc = make_accelerator(mixed_precision="fp16")
    assert acc.scaler is not None
    seed_everything(0)
    result = train(
        _model(tiny_dir),
        [tokenized_snli(64)],
        train_config=TrainConfig(epochs=2, batch_size=16, learning_rate=1e-3, seed=0, fp16=True),
        mixup_config=MixupConfig(strategy="none"),
        out_dir=tmp_path,
        accelerator=acc,
    )
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert acc.scaler.get_scale() > 0
    losses = [h["train_loss"] for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0]


@pytest.mark.parametrize("strategy", ["none", "kong", "random_pairs"])
def test_a_training_step_makes_no_host_device_sync(
    tiny_dir: Path, tmp_path: Path, fresh_accelerate: None, strategy: str
) -> None:
    """torch.cuda.set_sync_debug_mode("error") raises on any synchronising call, so one step
    (and its bookkeeping) must queue on the GPU without waiting. transformers' SDPA mask check
    (is the padding mask all ones?) syncs once per forward pass: its batches are run with the
    eager attention, which has no such check."""
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.model.classifier import build_classifier
    from tdmixup.training import loop as training
    from tdmixup.training.epoch_totals import EpochTotals

    acc = training.make_accelerator()
    model = build_classifier(ModelConfig(name_or_path=str(tiny_dir)), "pair", 3)
    model.encoder.set_attn_implementation("eager")
    loop = training._start(
        model,
        [tokenized_snli(32)],
        TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, seed=0),
        MixupConfig(strategy=strategy),  # type: ignore[arg-type]
        tmp_path,
        acc,
        resume=False,
        batch_columns=None,
    )
    plan = training.plan_epoch(loop.train_sets, loop.cfg, 0, 1, 0, 8, per_set=loop.per_set)
    zero = torch.zeros((), dtype=torch.float64, device=acc.device)
    totals = EpochTotals(hits=zero, judged=zero)
    batches = training._collate_step(loop, plan[0])
    training._optimiser_step(loop, batches, 0, 1)  # the first step allocates the optimiser state
    torch.cuda.synchronize()
    batches = training._collate_step(loop, plan[1])
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = training._optimiser_step(loop, batches, 0, 2)
        totals.add(out, batches, keep_logits=True)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    loop.guard.check(acc, 0, loop.ckpt)
    assert totals.steps == 1


def test_kong_noise_is_drawn_on_the_gpu() -> None:
    from tdmixup.strategies.kong import uniform_on

    x = torch.zeros(4, 8, 16, device="cuda")
    g = torch.Generator().manual_seed(3)
    a = uniform_on(x, g)
    b = uniform_on(x, torch.Generator().manual_seed(3))
    assert a.device == x.device and torch.equal(a, b) and 0 <= float(a.min()) < float(a.max()) < 1
