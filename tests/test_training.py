"""The training loop of :mod:`tdmixup.training.loop` on a tiny random BERT and real SNLI pairs:
reproducibility, learning, dynamics coverage, failure on NaN, resume after kill -9 and a
2-process CPU run that must match the 1-process one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny import (  # noqa: E402
    build_tiny_model_dir,
    max_abs_difference,
    require_minilm,
    require_snli,
    tokenized_snli,
    train_tiny,
    weights_of,
)
from tdmixup.model.classifier import load_classifier  # noqa: E402
from tdmixup.model.predict import predict_logits  # noqa: E402
from tdmixup.strategies import step as mixup  # noqa: E402
from tdmixup.training.loop import TrainingError, make_accelerator  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "scripts" / "train_tiny.py"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny random BERTs with the MiniLM tokenizer: with dropout 0.1 and with none."""
    require_snli()
    require_minilm()
    root = tmp_path_factory.mktemp("tiny")
    return {
        "dropout": build_tiny_model_dir(root / "dropout", dropout=0.1),
        "no_dropout": build_tiny_model_dir(root / "no_dropout", dropout=0.0),
    }


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Train with one thread: the subprocess scripts do, and matching them bit for bit needs the
    same; on a busy 2-core machine two threads also cost ~15x the CPU time (spinning workers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def final_logits(result: object, n: int = 37) -> np.ndarray:
    data = tokenized_snli(n)
    ids, logits = predict_logits(result.model, data, batch_size=64, accelerator=make_accelerator())  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ids, np.sort(data.sample_ids))
    return logits


def untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """A training history without its wall times (which differ between identical runs)."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def per_epoch_ids(path: Path) -> dict[int, list[int]]:
    table = pd.read_parquet(path)
    return {int(e): sorted(g["sample_id"].tolist()) for e, g in table.groupby("epoch")}


def test_same_seed_same_logits_other_seed_different(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    runs = {
        name: final_logits(train_tiny(model_dirs["dropout"], tmp_path / name, epochs=1, seed=seed))
        for name, seed in [("a", 5), ("b", 5), ("c", 6)]
    }
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert np.abs(runs["a"] - runs["c"]).max() > 1e-4


def test_tiny_model_overfits_32_samples(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = train_tiny(
        model_dirs["no_dropout"],
        tmp_path,
        n=32,
        epochs=12,
        batch_size=8,
        learning_rate=1e-2,
        dropout=0.0,
    )
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.25 * losses[0], losses
    data = tokenized_snli(32)
    accuracy = (
        final_logits(result, 32).argmax(1) == data.labels[np.argsort(data.sample_ids)]
    ).mean()
    assert accuracy >= 0.9, (accuracy, losses)
    assert [h["epoch"] for h in result.history] == list(range(1, 13))
    assert all(h["steps"] == 4 for h in result.history)


@pytest.mark.parametrize("strategy", ["none", "tdmixup"])
@pytest.mark.parametrize("mode", ["train_pass", "epoch_end"])
def test_dynamics_table_has_every_id_once_per_epoch(
    model_dirs: dict[str, Path], tmp_path: Path, mode: str, strategy: str
) -> None:
    # tdmixup: 18 easy + 19 ambiguous samples, the easy set cycled; dynamics over all 37
    train_tiny(model_dirs["dropout"], tmp_path, epochs=2, strategy=strategy, dynamics_mode=mode)
    expected = sorted(tokenized_snli(37).sample_ids.tolist())
    table = pd.read_parquet(tmp_path / "dynamics.parquet")
    assert len(table) == 2 * 37
    assert per_epoch_ids(tmp_path / "dynamics.parquet") == {0: expected, 1: expected}
    assert np.isfinite(np.stack(table["logits"].to_numpy())).all()


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = mixup.compute_step
    calls = {"n": 0}

    def nan_in_epoch_two(*args: object, **kwargs: object) -> mixup.StepOutput:
        out = real_step(*args, **kwargs)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 10 + 3:  # 37 samples, batch 4: 10 steps per epoch; step 3 of epoch 2
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(mixup, "compute_step", nan_in_epoch_two)
    with pytest.raises(
        TrainingError,
        match=r"non-finite loss \(nan\) at epoch 2, step 3; the last good checkpoint is kept",
    ):
        train_tiny(model_dirs["dropout"], tmp_path, epochs=3)
    ckpt = tmp_path / "checkpoint"
    assert [h["epoch"] for h in json.loads((ckpt / "train_log.json").read_text())] == [1]
    model, _ = load_classifier(ckpt)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (tmp_path / "checkpoint.tmp").exists()


def test_nan_in_the_first_epoch_says_no_checkpoint_exists(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = mixup.compute_step

    def always_nan(*args: object, **kwargs: object) -> mixup.StepOutput:
        out = real_step(*args, **kwargs)  # type: ignore[arg-type]
        out.loss = out.loss * float("inf")
        return out

    monkeypatch.setattr(mixup, "compute_step", always_nan)
    with pytest.raises(TrainingError, match="at epoch 1, step 1; no checkpoint was written yet"):
        train_tiny(model_dirs["dropout"], tmp_path, epochs=1)


def test_nan_gradient_from_a_finite_loss_raises(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = mixup.compute_step

    def nan_gradient(*args: object, **kwargs: object) -> mixup.StepOutput:
        out = real_step(*args, **kwargs)  # type: ignore[arg-type]
        # where() picks 0 in the forward pass, but sqrt's derivative at -loss is NaN and
        # 0 * NaN = NaN
        out.loss = out.loss + torch.where(
            torch.tensor(True), torch.zeros(()), torch.sqrt(-out.loss)
        )
        return out

    monkeypatch.setattr(mixup, "compute_step", nan_gradient)
    with pytest.raises(
        TrainingError,
        match=r"non-finite gradient norm \(nan\) at epoch 1, step 1 although the loss "
        r"was finite \(\d",
    ):
        train_tiny(model_dirs["dropout"], tmp_path, epochs=1)


class Interrupted(Exception):
    """Raised by an ``on_epoch_end`` callback to stop a run before an epoch's checkpoint."""


def stop_before_checkpoint_2(epoch: int, model: object) -> dict[str, float]:
    if epoch == 1:
        raise Interrupted
    return {}


@pytest.fixture(scope="module")
def two_epoch_reference(
    model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> object:
    return train_tiny(model_dirs["dropout"], tmp_path_factory.mktemp("reference"), epochs=2)


@pytest.mark.parametrize("crash", ["between_renames", "during_cleanup"])
def test_resume_after_a_kill_inside_the_checkpoint_swap(
    model_dirs: dict[str, Path], tmp_path: Path, crash: str, two_epoch_reference: object
) -> None:
    """checkpoint.save renames checkpoint → checkpoint.old, checkpoint.tmp → checkpoint, then
    deletes checkpoint.old; a kill can leave either of the states made here."""
    with pytest.raises(Interrupted):
        train_tiny(model_dirs["dropout"], tmp_path, epochs=2, on_epoch_end=stop_before_checkpoint_2)
    ckpt, old = tmp_path / "checkpoint", tmp_path / "checkpoint.old"
    if crash == "between_renames":
        ckpt.rename(old)
        shutil.copytree(old, tmp_path / "checkpoint.tmp")
    else:
        shutil.copytree(ckpt, old)
        (old / "training_state.pt").unlink()
    epochs_run: list[int] = []
    resumed = train_tiny(
        model_dirs["dropout"],
        tmp_path,
        epochs=2,
        resume=True,
        on_epoch_end=lambda epoch, model: epochs_run.append(epoch) or {},
    )
    assert epochs_run == [1], "the resumed run trained the first epoch again"
    assert untimed(resumed.history) == untimed(two_epoch_reference.history)  # type: ignore[attr-defined]
    assert all(
        h["seconds"] > 0 for h in resumed.history
    )  # the epoch before the kill keeps its time
    assert resumed.seconds == pytest.approx(sum(h["seconds"] for h in resumed.history))  # type: ignore[attr-defined]
    assert (
        max_abs_difference(weights_of(resumed.model), weights_of(two_epoch_reference.model)) == 0.0
    )  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def run_script(args: list[str], *, torchrun: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    if torchrun:
        launcher = Path(sys.executable).parent / "torchrun"
        if not launcher.exists():
            pytest.skip(f"torchrun not found beside {sys.executable}")
        cmd = [str(launcher), "--standalone", "--nproc_per_node", "2", str(SCRIPT), *args]
    else:
        cmd = [sys.executable, str(SCRIPT), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_resume_after_kill_9_matches_an_uninterrupted_run(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = [
        "--model-dir",
        str(model_dirs["dropout"]),
        "--out",
        str(out),
        "--dynamics",
        "train_pass",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    # the script sleeps at the end of epochs 2 and 3, before their checkpoints: the kill lands there
    child = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--epoch-sleep", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "train_pass" / "checkpoint" / "train_log.json"
    deadline = time.monotonic() + 120
    while not log.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not log.exists():
        child.kill()
        pytest.fail(f"no epoch-1 checkpoint appeared; child said: {child.communicate()[1][-2000:]}")
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert [h["epoch"] for h in json.loads(log.read_text())] == [1], (
        "killed too late to test a resume"
    )
    assert not (out / "train_pass" / "final.npz").exists()

    run_script([*args, "--resume"])
    assert json.loads((out / "train_pass" / "epochs_run.json").read_text()) == [1, 2]
    resumed = dict(np.load(out / "train_pass" / "final.npz"))
    reference = train_tiny(
        model_dirs["dropout"], tmp_path / "reference", dynamics_mode="train_pass"
    )
    assert max_abs_difference(resumed, weights_of(reference.model)) == 0.0
    assert untimed(json.loads((out / "train_pass" / "history.json").read_text())) == untimed(
        reference.history
    )
    got = pd.read_parquet(out / "train_pass" / "dynamics.parquet")
    want = pd.read_parquet(tmp_path / "reference" / "dynamics.parquet")
    np.testing.assert_array_equal(got["sample_id"], want["sample_id"])
    np.testing.assert_array_equal(
        np.stack(got["logits"].to_numpy()), np.stack(want["logits"].to_numpy())
    )


@pytest.mark.slow
def test_two_cpu_processes_see_every_sample_once_and_match_one_process(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run_script(
        [
            "--model-dir",
            str(model_dirs["no_dropout"]),
            "--out",
            str(out),
            "--dropout",
            "0",
            "--dynamics",
            "both",
            "--epochs",
            "2",
        ],
        torchrun=True,
    )
    expected = sorted(tokenized_snli(37).sample_ids.tolist())
    writes = {r: json.loads((tmp_path / f"writes.rank{r}.json").read_text()) for r in (0, 1)}
    assert writes[1] == [], f"rank 1 wrote under the run folder: {writes[1][:5]}"
    assert any("checkpoint" in w for w in writes[0]) and any(
        "dynamics.parquet" in w for w in writes[0]
    )

    for mode in ("epoch_end", "train_pass"):
        assert per_epoch_ids(out / mode / "dynamics.parquet") == {0: expected, 1: expected}, mode
        one = train_tiny(
            model_dirs["no_dropout"],
            tmp_path / f"one_{mode}",
            epochs=2,
            dropout=0.0,
            dynamics_mode=mode,
        )
        two = dict(np.load(out / mode / "final.npz"))
        assert max_abs_difference(two, weights_of(one.model)) < 1e-5, mode
        history = json.loads((out / mode / "history.json").read_text())
        assert [h["steps"] for h in history] == [10, 10]
        np.testing.assert_allclose(
            [h["train_loss"] for h in history], [h["train_loss"] for h in one.history], rtol=1e-5
        )
        got = pd.read_parquet(out / mode / "dynamics.parquet")
        want = pd.read_parquet(tmp_path / f"one_{mode}" / "dynamics.parquet")
        np.testing.assert_allclose(
            np.stack(got["logits"].to_numpy()), np.stack(want["logits"].to_numpy()), atol=1e-4
        )


def test_steps_per_epoch_cycles_every_set_for_exactly_that_many_steps() -> None:
    from tdmixup.core.config import TrainConfig
    from tdmixup.training.planning import plan_epoch

    data = tokenized_snli(37)
    small, large = (
        data.subset(data.sample_ids[:10]),
        data.subset(data.sample_ids[10:]),
    )  # 3 and 7 batches of <= 4
    paper = plan_epoch([small, large], TrainConfig(seed=0), epoch=0, world=1, rank=0, batch_size=4)
    assert len(paper) == 7  # one pass over the larger set
    plan = plan_epoch(
        [small, large],
        TrainConfig(seed=0, steps_per_epoch=12),
        epoch=0,
        world=1,
        rank=0,
        batch_size=4,
    )
    assert len(plan) == 12 and all(len(step) == 2 for step in plan)
    small_rows = np.concatenate([step[0].positions for step in plan])
    large_rows = np.concatenate([step[1].positions for step in plan])
    np.testing.assert_array_equal(
        np.bincount(small_rows, minlength=10), np.full(10, 4)
    )  # 4 whole cycles
    assert set(large_rows.tolist()) == set(range(27))  # one whole cycle, then 5 batches of the next
    again = plan_epoch(
        [small, large],
        TrainConfig(seed=0, steps_per_epoch=12),
        epoch=0,
        world=1,
        rank=0,
        batch_size=4,
    )
    assert all(
        np.array_equal(a[1].positions, b[1].positions) for a, b in zip(plan, again, strict=True)
    )
    next_epoch = plan_epoch(
        [small, large],
        TrainConfig(seed=0, steps_per_epoch=12),
        epoch=1,
        world=1,
        rank=0,
        batch_size=4,
    )
    assert not np.array_equal(
        np.concatenate([s[1].positions for s in next_epoch]), large_rows
    )  # re-shuffled


def test_bf16_runs_training_forward_passes_in_bfloat16_and_keeps_fp32_weights(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """``TrainConfig(bf16=True)``: the 4 training steps' and the epoch-end dynamics pass's head
    outputs are bfloat16 (prediction autocasts with the run's precision), the weights stay fp32,
    and the loss stays close to the fp32 run's."""
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.model.classifier import build_classifier
    from tdmixup.training.loop import seed_everything, train

    def run(bf16: bool) -> tuple[object, list[torch.dtype]]:
        seed_everything(0)
        model = build_classifier(ModelConfig(name_or_path=str(model_dirs["dropout"])), "pair", 3)
        seen: list[torch.dtype] = []
        handle = model.head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        out = tmp_path / f"bf16_{bf16}"
        result = train(
            model,
            [tokenized_snli(16)],
            mixup_config=MixupConfig(),
            out_dir=out,
            accelerator=make_accelerator(),
            train_config=TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, seed=0, bf16=bf16),
            dynamics_mode="epoch_end",
            dynamics_path=out / "dynamics.parquet",
        )
        handle.remove()
        return result, seen

    fp32, seen32 = run(False)
    bf16, seen16 = run(True)
    assert seen32 == [torch.float32] * 5  # 4 steps + 1 dynamics batch
    assert seen16 == [torch.bfloat16] * 5
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # type: ignore[attr-defined]
    loss32, loss16 = fp32.history[0]["train_loss"], bf16.history[0]["train_loss"]  # type: ignore[attr-defined]
    assert loss16 != loss32 and abs(loss16 - loss32) < 0.02


def test_an_encoder_stored_in_bfloat16_loads_with_float32_master_weights(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """A tiny BERT saved in bfloat16 (as many hub encoders are): build_classifier and
    load_classifier give float32 weights, so the fp32 head takes its features (transformers 5
    otherwise keeps the stored dtype: "mat1 and mat2 must have the same dtype") and a --bf16 run
    updates fp32 master weights."""
    from transformers import AutoModel

    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import build_classifier, load_tokenizer, save_classifier

    stored = tmp_path / "bf16_encoder"
    AutoModel.from_pretrained(model_dirs["dropout"]).to(torch.bfloat16).save_pretrained(stored)
    assert (
        AutoModel.from_pretrained(stored, dtype="auto").dtype == torch.bfloat16
    )  # stored and kept as bf16
    model = build_classifier(ModelConfig(name_or_path=str(stored)), "pair", 3).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    data = tokenized_snli(8)
    ids, logits = predict_logits(model, data, batch_size=4, accelerator=make_accelerator())
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    model.encoder.to(torch.bfloat16)  # a checkpoint whose encoder was saved in bf16
    save_classifier(model, load_tokenizer(str(model_dirs["dropout"])), tmp_path / "ckpt")
    assert (
        AutoModel.from_pretrained(tmp_path / "ckpt" / "encoder", dtype="auto").dtype
        == torch.bfloat16
    )
    loaded, _ = load_classifier(tmp_path / "ckpt")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    ("bf16", "device", "native", "warned"),
    [
        (True, "cpu", False, True),  # the 13-18x-slower case (AMD EPYC, AVX2)
        (True, "cpu", True, False),  # AMX / AVX-512 BF16: the fast path
        (False, "cpu", False, False),  # fp32: nothing to say
        # GPUs: tests/test_gpu_precision.py (compute capability < 8.0 warns, mocked)
    ],
)
def test_bf16_on_a_cpu_without_native_bfloat16_logs_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bf16: bool,
    device: str,
    native: bool,
    warned: bool,
) -> None:
    from tdmixup.core.config import TrainConfig
    from tdmixup.training import optim

    monkeypatch.setattr(optim, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="tdmixup.training.loop"):
        assert optim.warn_if_bf16_is_slow(TrainConfig(bf16=bf16), device) is warned
    assert ("without native bfloat16" in caplog.text) is warned
    assert ("TrainConfig.bf16=False" in caplog.text) is warned


def test_cpu_has_native_bf16_agrees_with_the_cpu_flags() -> None:
    """oneDNN's bfloat16 path needs AVX-512 (the core subset: avx512bw, avx512vl, avx512dq);
    an AVX2-only CPU must say False (where /proc/cpuinfo is readable)."""
    from tdmixup.training.optim import cpu_has_native_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo (not Linux): the CPU flags cannot be read here")
    flags = next((ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), "")
    if "avx512" not in flags:
        assert cpu_has_native_bf16() is False
    elif "avx512_bf16" in flags.split() or "amx_bf16" in flags.split():
        assert cpu_has_native_bf16() is True  # the project's Intel Xeon (AMX) is one
    else:  # AVX-512 without BF16: oneDNN converts in software; either answer is defensible
        assert isinstance(cpu_has_native_bf16(), bool)


def test_steps_per_epoch_refuses_training_pass_dynamics(tmp_path: Path) -> None:
    from tdmixup.core.config import MixupConfig, TrainConfig
    from tdmixup.training.loop import train

    with pytest.raises(ValueError, match="epoch_end"):
        train(
            None,
            [tokenized_snli(8)],
            train_config=TrainConfig(steps_per_epoch=3),
            mixup_config=MixupConfig(),  # type: ignore[arg-type]
            out_dir=tmp_path,
            accelerator=None,
            dynamics_mode="train_pass",
        )


def test_table3_arms_take_the_same_samples_per_step_and_mixed_share(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TDMixUp on 20 + 20 pairs and random pairs on their union (40), batch 4, one epoch: the
    loop hands both strategies 5 steps of two 4-row batches (8 unmixed + 4 mixed rows, mixed
    share of the loss m / (m + 2v) = 1/3). Random pairs used to take 10 steps of one batch
    (4 unmixed + 4 mixed, share 1/2)."""
    seen: dict[str, list[tuple[int, ...]]] = {}
    real_step = mixup.compute_step

    def spy(
        strategy: str,
        model: object,
        batches: list[dict[str, torch.Tensor]],
        *args: object,
        **kw: object,
    ) -> object:
        seen.setdefault(strategy, []).append(tuple(int((b["weight"] > 0).sum()) for b in batches))
        return real_step(strategy, model, batches, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mixup, "compute_step", spy)
    for strategy in (
        "tdmixup",
        "random_pairs",
    ):  # train_tiny: tdmixup on the halves, random pairs on all 40
        train_tiny(model_dirs["no_dropout"], tmp_path / strategy, n=40, epochs=1, strategy=strategy)

    def budget(steps: list[tuple[int, ...]]) -> list[tuple[int, int, float]]:
        """Per step: unmixed rows, mixed rows (row i × row i of two batches, else every row), mixed
        share of the loss with m = v = 1."""
        return [(sum(s), min(s) if len(s) == 2 else s[0], 1 / (1 + len(s))) for s in steps]

    assert budget(seen["random_pairs"]) == budget(seen["tdmixup"]) == [(8, 4, 1 / 3)] * 5


@pytest.mark.parametrize("n", [40, 37, 35])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_random_pairs_plan_one_pass_in_two_batches_per_step(n: int, world: int) -> None:
    """Random pairs: one pass over the set, two batches per step, each sample once over all
    processes (an odd number of batches takes the last one from the next shuffle)."""
    from tdmixup.core.config import TrainConfig
    from tdmixup.training.planning import batches_per_set, plan_epoch, steps_per_epoch

    data = tokenized_snli(n)
    per_set = batches_per_set("random_pairs", 1)
    plans = [
        plan_epoch([data], TrainConfig(seed=0), 0, world, rank, 4, per_set=per_set)
        for rank in range(world)
    ]
    batches = -(-n // 4)
    assert per_set == 2 and {len(p) for p in plans} == {-(-batches // 2)} == {
        steps_per_epoch([data], 4, per_set=2)
    }
    assert all(len(step) == 2 for p in plans for step in p)
    rows = np.concatenate([b.positions[b.weights > 0] for p in plans for step in p for b in step])
    counts = np.bincount(rows, minlength=n)
    assert counts.min() == 1 and (counts > 1).sum() <= (4 if batches % 2 else 0)
    for step in range(
        len(plans[0])
    ):  # each of the two batches' weights sum to 1 over the processes
        for j in range(2):
            assert sum(float(p[step][j].weights.sum()) for p in plans) == pytest.approx(world)
    with pytest.raises(ValueError, match="tdmixup.*2 batch"):
        batches_per_set("tdmixup", 1)


@pytest.mark.parametrize("flag", ["ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"])
def test_deepspeed_and_fsdp_launches_are_refused_in_one_line_before_training(
    flag: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``accelerate launch`` with a DeepSpeed or FSDP config sets ``ACCELERATE_USE_*``: the run
    stops with exit 2 and one line saying what is supported, before any folder is written (the
    old loop trained and wrote sharded checkpoints; DeepSpeed crashed in ``prepare``)."""
    from accelerate.utils import DistributedType

    from tdmixup.cli.commands import main
    from tdmixup.training.loop import check_supported_launch

    monkeypatch.setenv(flag, "true")
    with pytest.raises(TrainingError, match="not supported.*--multi_gpu"):
        make_accelerator()
    out = tmp_path / "run"
    assert main(["run", "--task", "snli", "--train-size", "48", "--output-dir", str(out)]) == 2
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("error:")]
    assert len(errors) == 1 and "is not supported" in errors[0] and "torchrun" in errors[0]
    assert not out.exists()
    for kind in (DistributedType.DEEPSPEED, DistributedType.FSDP, DistributedType.MEGATRON_LM):
        with pytest.raises(TrainingError):
            check_supported_launch({}, kind)
    for kind in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
        check_supported_launch({"ACCELERATE_USE_FSDP": "false"}, kind)


def _old_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimiser step as it was before the CPU speed-ups: Accelerate's clip (a separate
    pass that rescales every gradient) and the embedding's dense backward."""
    from tdmixup.training import loop as training
    from tdmixup.training.optim import KeptEmbeddingGradient

    monkeypatch.setattr(
        training,
        "clip_gradients",
        lambda acc, optimizer, params, max_norm: acc.clip_grad_norm_(params, max_norm),
    )
    monkeypatch.setattr(KeptEmbeddingGradient, "attach", classmethod(lambda *a: None))


@pytest.mark.parametrize("strategy", ["none", "tdmixup"])
def test_the_faster_step_trains_the_same_weights(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    """Clipping inside the fused AdamW step and the kept embedding gradient change no weight:
    bitwise with one batch per step when nothing is clipped; within float32 rounding when a
    step is clipped (g / (1/c) instead of g · c) or passes two batches through the encoder."""
    kwargs: dict = {"epochs": 1, "strategy": strategy, "dropout": 0.0}
    for max_norm in (1e9, 0.5):
        new = train_tiny(
            model_dirs["no_dropout"], tmp_path / f"new{max_norm}", max_grad_norm=max_norm, **kwargs
        )
        embedding = new.model.encoder.get_input_embeddings()
        assert embedding.sparse is False  # the caller's model gets its dense backward back
        with monkeypatch.context() as m:
            _old_step(m)
            old = train_tiny(
                model_dirs["no_dropout"],
                tmp_path / f"old{max_norm}",
                max_grad_norm=max_norm,
                **kwargs,
            )
        a, b = weights_of(new.model), weights_of(old.model)
        if max_norm > 1e6 and strategy == "none":
            assert all(np.array_equal(a[k], b[k]) for k in a)
        else:
            assert max_abs_difference(a, b) < 1e-5


def test_a_cpu_step_keeps_one_embedding_gradient_and_clips_without_a_separate_pass(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one CPU process the word embeddings' gradient lands in one buffer kept across steps
    (no 47 MB allocation per step for MiniLM), and clipping never rescales the gradients in a
    pass of its own: the fused AdamW step gets the factor (``grad_scale``)."""
    import torch.nn.utils

    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.model.classifier import build_classifier
    from tdmixup.training import loop as training
    from tdmixup.training.epoch_totals import EpochTotals

    def no_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("gradients rescaled in a separate pass")

    monkeypatch.setattr(torch.nn.utils, "clip_grads_with_norm_", no_pass)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", no_pass)
    data = tokenized_snli(16)
    model = build_classifier(ModelConfig(name_or_path=str(model_dirs["no_dropout"])), "pair", 3)
    loop = training._start(
        model,
        [data],
        TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, seed=0, max_grad_norm=0.1),
        MixupConfig(strategy="none"),
        tmp_path,
        make_accelerator(),
        resume=False,
        batch_columns=None,
    )
    assert loop.embedding_grad is not None
    weight = model.encoder.get_input_embeddings().weight
    plan = training.plan_epoch([data], loop.cfg, 0, 1, 0, 4, per_set=1)
    zero = torch.zeros((), dtype=torch.float64)
    totals = EpochTotals(hits=zero, judged=zero)
    buffers, scales = set(), []
    for step, planned in enumerate(plan[:3]):
        before = weight.detach().clone()
        batches = training._collate_step(loop, planned)
        totals.add(training._optimiser_step(loop, batches, 0, step), batches, False)
        buffers.add(loop.embedding_grad.buffer.data_ptr())  # type: ignore[union-attr]
        scales.append(float(loop.optimizer.optimizer.grad_scale))
        assert not torch.equal(weight, before)  # the embedding still learns
    assert len(buffers) == 1
    assert max(scales) > 1  # max_grad_norm 0.1 clips: each gradient divided by norm / 0.1
    loop.guard.check(loop.accelerator, 0, loop.ckpt)  # every step finite


@pytest.mark.parametrize("fused", [True, False])
def test_clip_gradients_gives_the_fused_step_torchs_clip_factor(fused: bool) -> None:
    """The total norm and factor are torch's ``clip_grad_norm_``'s, and the step that divides by
    it moves the weights as clipping first did; a non-fused AdamW is clipped in place."""
    from tdmixup.training.optim import clip_gradients

    g = torch.Generator().manual_seed(0)
    shapes = [(300, 8), (8,), (3, 8)]

    def params() -> list[torch.nn.Parameter]:
        init = torch.Generator().manual_seed(1)
        return [torch.nn.Parameter(torch.randn(s, generator=init)) for s in shapes]

    grads = [torch.randn(s, generator=g) for s in shapes]
    ours, ref = params(), params()
    for p, q, grad in zip(ours, ref, grads, strict=True):
        p.grad, q.grad = grad.clone(), grad.clone()
    opt = torch.optim.AdamW(ours, lr=0.1, fused=fused)
    ref_opt = torch.optim.AdamW(ref, lr=0.1, fused=fused)
    norm = clip_gradients(make_accelerator(), opt, ours, 2.0)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, 2.0)
    assert torch.equal(norm, ref_norm) and float(norm) > 2.0
    if fused:
        assert torch.equal(opt.grad_scale, 1 / torch.clamp(2.0 / (ref_norm + 1e-6), max=1.0))
        assert all(torch.equal(p.grad, grad) for p, grad in zip(ours, grads, strict=True))
    else:
        assert getattr(opt, "grad_scale", None) is None
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(ours, ref, strict=True))
    opt.step()
    ref_opt.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
