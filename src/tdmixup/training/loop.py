"""One training loop for every strategy, on Hugging Face Accelerate (CPU, one GPU, many GPUs).

Read top to bottom: :func:`train` is the loop. ``_start`` builds the optimiser, schedule and
strategy RNG (restored from the last epoch's checkpoint on resume); per epoch ``_train_epoch``
plans the batches (:mod:`tdmixup.training.planning`, which also says what an epoch is) and runs
``_optimiser_step`` on each step (the strategy's loss from
:func:`tdmixup.strategies.step.compute_step`, then the NaN/inf guards, clipping and AdamW of
:mod:`tdmixup.training.optim`), and ``_end_epoch`` reduces the epoch's totals
(:mod:`tdmixup.training.epoch_totals`), records training dynamics, logs the epoch and writes a
checkpoint (:mod:`tdmixup.training.checkpoint`).

Multi-process (``accelerate launch`` / ``torchrun``): the global batch of ``batch_size`` rows is
split over the processes, every sample is seen exactly once per pass (no sampler padding), only
the main process writes files and shows progress; dynamics are gathered by ``sample_id``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tdmixup.core.config import DynamicsMode, MixupConfig, ReportTo, TrainConfig
from tdmixup.core.layout import CHECKPOINT, TRAINING_STATE
from tdmixup.core.runio import main_process_decides
from tdmixup.data.collate import PlannedBatch, TokenizedSet, collate
from tdmixup.model.classifier import Classifier
from tdmixup.model.predict import gather_by_id, predict_logits, to_device
from tdmixup.strategies import step as mixup
from tdmixup.strategies.mixing import Batch, StepOutput
from tdmixup.training import checkpoint, tracking
from tdmixup.training.epoch_totals import EpochTotals, epoch_entry, epoch_line
from tdmixup.training.optim import (
    KeptEmbeddingGradient,
    StepGuard,
    TrainingError,
    adamw,
    clip_gradients,
    enable_tf32,
    precision_of,
    skip_step_if,
    step_autocast,
    warn_if_bf16_is_slow,
)
from tdmixup.training.planning import batches_per_set, plan_epoch, steps_per_epoch

__all__ = [
    "Columns",
    "EpochCallback",
    "TrainResult",
    "TrainingError",
    "batches_per_set",
    "epoch_line",
    "make_accelerator",
    "seed_everything",
    "steps_per_epoch",
    "train",
]

log = logging.getLogger("tdmixup.training.loop")

Columns = Callable[[Batch], Batch]
"""``batch -> extra columns`` for each collated training batch (``train(batch_columns=...)``)."""
EpochCallback = Callable[[int, Classifier], dict[str, float]]
"""``(epoch, model) -> metrics`` after each epoch (:func:`train`'s ``on_epoch_end``)."""


LOG_EVERY = tracking.LOG_EVERY_STEPS
"""Steps between the loop's reads of device values (progress-bar loss, the NaN/inf guard, the
tracker's loss and learning rate)."""


def make_accelerator(
    report_to: ReportTo = "none", run_dir: Path | None = None, mixed_precision: str = "no"
) -> Any:
    """An :class:`accelerate.Accelerator` for this process (CPU, GPU or one of many processes).

    ``mixed_precision="fp16"`` (``--fp16``) gives Accelerate's dynamic gradient scaler; it is
    refused without CUDA. On CUDA, TF32 matmuls are switched on (:func:`tdmixup.training.optim.
    enable_tf32`, Ampere and later). bfloat16 needs no scaler: ``--bf16`` autocasts in the loop.

    Accelerate joins the processes of a ``torchrun`` launch only on a GPU, or on CPU when asked
    with ``cpu=True``; without it every CPU process would train alone on all the data and write
    the same files. So a multi-process launch on a machine without CUDA runs on CPU with gloo.

    Args:
        report_to: the experiment tracker (:mod:`tdmixup.training.tracking`); ``none`` tracks
            nothing.
        run_dir: the run folder whose ``tracking/`` holds the tracker's local files (needed
            unless ``report_to`` is ``none``).

    Raises:
        RuntimeError: when launched as several processes that Accelerate did not join.
        TrainingError: when launched with DeepSpeed, FSDP or Megatron-LM (see
            :func:`check_supported_launch`).
        tdmixup.training.tracking.TrackingError: when ``report_to``'s package is not installed.
        ValueError: ``fp16`` without a CUDA GPU.
    """
    from accelerate import Accelerator

    check_supported_launch(os.environ)  # before Accelerator(): DeepSpeed may not even import
    tracking.require_tracker(report_to)
    if report_to != "none" and run_dir is None:
        raise ValueError(f"report_to={report_to!r} needs the run folder (run_dir)")
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError(
            "--fp16 needs a CUDA GPU (float16 autocast with a gradient scaler); on CPU train in "
            "fp32, or with --bf16 on a CPU with native bfloat16"
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    kwargs = {"mixed_precision": "fp16"} if mixed_precision == "fp16" else {}
    accelerator = Accelerator(
        cpu=launched > 1 and not torch.cuda.is_available(),
        **kwargs,
        **tracking.accelerator_options(report_to, run_dir or Path(".")),
    )
    check_supported_launch(os.environ, accelerator.distributed_type)
    if accelerator.num_processes != launched:
        raise RuntimeError(
            f"launched as {launched} processes (WORLD_SIZE) "
            f"but Accelerate sees {accelerator.num_processes} "
            f"({accelerator.distributed_type}); "
            "run with one process or on a supported multi-process device"
        )
    enable_tf32(accelerator.device)
    return accelerator


UNSUPPORTED_LAUNCHES = {
    "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
    "ACCELERATE_USE_FSDP": "FSDP",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM",
}
"""Environment flags ``accelerate launch`` sets for a sharded launch (its config or options)."""


def check_supported_launch(environ: Mapping[str, str], distributed_type: Any = None) -> None:
    """Refuse DeepSpeed, FSDP and Megatron-LM before anything trains, in one line.

    The loop prepares only the model and optimiser (DeepSpeed's ``auto`` micro-batch needs a
    dataloader), records dynamics and evaluates on the unwrapped model (still sharded under
    FSDP/ZeRO-3), and the main process alone saves the weights (a shard of them). Supported:
    one process (CPU or GPU) and data parallel over processes (DDP: ``accelerate launch
    --multi_gpu``, ``torchrun``; gloo on CPU), with ``--bf16``.

    Args:
        environ: the process environment (``accelerate launch`` sets ``ACCELERATE_USE_*``).
        distributed_type: ``Accelerator.distributed_type`` once one exists (None before).

    Raises:
        TrainingError: naming the setup and what is supported.
    """
    names = [name for flag, name in UNSUPPORTED_LAUNCHES.items() if _flag_on(environ.get(flag))]
    kind = str(getattr(distributed_type, "value", distributed_type or "")).upper()
    names += [n for n in UNSUPPORTED_LAUNCHES.values() if n.upper().replace("-", "_") in kind]
    if names:
        raise TrainingError(
            f"{' and '.join(dict.fromkeys(names))} is not supported by tdmixup's training loop "
            "(its checkpoints, dynamics and evaluation need the whole model on every process); "
            "launch with plain data parallel instead: `accelerate launch --multi_gpu` with "
            "distributed_type MULTI_GPU (no DeepSpeed/FSDP in the accelerate config), or torchrun"
        )


def _flag_on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    from accelerate.utils import set_seed

    set_seed(seed)


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (unwrapped) and per-epoch logs.

    ``seconds`` is the wall time of all epochs (``history[i]["seconds"]`` summed), including the
    epochs trained before a resume, so a killed and resumed stage reports its whole cost.
    """

    model: Classifier
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(
    model: Classifier,
    train_sets: list[TokenizedSet],
    *,
    train_config: TrainConfig,
    mixup_config: MixupConfig,
    out_dir: Path,
    accelerator: Any,
    dynamics_mode: DynamicsMode | None = None,
    dynamics_path: Path | None = None,
    dynamics_set: TokenizedSet | None = None,
    tokenizer: Any = None,
    task_name: str = "",
    dynamics_fingerprint: Any = None,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    batch_columns: Columns | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``train_sets`` with the configured strategy.

    Args:
        model: the classifier (not yet prepared by Accelerate).
        train_sets: one set, or two for ``tdmixup`` (easy, ambiguous).
        train_config, mixup_config: the loop and strategy settings.
        out_dir: the stage folder; holds ``checkpoint/`` (with ``train_log.json`` in it).
        accelerator: from :func:`make_accelerator`.
        dynamics_mode: record training dynamics ("epoch_end" / "train_pass") or None.
        dynamics_path: the Parquet table to append each epoch to.
        dynamics_set: the set whose dynamics are recorded (default: ``train_sets[0]``).
        tokenizer: saved beside the model in each checkpoint (so it can be evaluated alone).
        dynamics_fingerprint: a :class:`tdmixup.dynamics.fingerprint.DataFingerprint` of the
            recorded set's rows (text hashes, label names, columns), stored with the dynamics table.
        resume: continue after the last completed epoch's checkpoint in ``out_dir``.
        on_epoch_end: optional callback ``(epoch, model) -> metrics`` (e.g. dev accuracy).
        batch_columns: optional ``batch -> extra columns`` added to every collated training
            batch before the step (``aum_saliency``: each row's recorded saliency, by sample_id).
    """
    _check_dynamics_mode(dynamics_mode, train_config, mixup_config)
    loop = _start(
        model,
        train_sets,
        train_config,
        mixup_config,
        out_dir,
        accelerator,
        resume=resume,
        batch_columns=batch_columns,
    )
    recording = None
    if dynamics_mode is not None and dynamics_path is not None:
        data = dynamics_set if dynamics_set is not None else train_sets[0]
        recording = _Recording(dynamics_mode, dynamics_path, data, task_name, dynamics_fingerprint)
    try:
        for epoch in range(loop.first_epoch, train_config.epochs):
            start = time.perf_counter()
            totals = _train_epoch(loop, epoch, recording)
            _end_epoch(loop, epoch, totals, start, recording, on_epoch_end, tokenizer)
    finally:
        if loop.embedding_grad is not None:
            loop.embedding_grad.close()  # the caller's model gets its dense embedding back
    trained = accelerator.unwrap_model(loop.model)
    accelerator.free_memory()  # forget this model/optimizer (one session trains many)
    # checkpoints written before epochs were timed have no "seconds": those epochs count 0
    seconds = float(sum(h.get("seconds", 0.0) for h in loop.history))
    return TrainResult(model=trained, history=loop.history, seconds=seconds)


@dataclass
class _Loop:
    """What the epochs of one :func:`train` call share: settings, model and optimiser state.

    ``model`` is the model as Accelerate prepared it (a DistributedDataParallel wrapper with
    several processes); ``accelerator.unwrap_model(model)`` is the :class:`Classifier`.
    ``generator`` draws the strategy's random choices (λ, partners, Kong et al.'s noise; dropout
    draws from torch's global RNG); checkpoints save both and a resume restores them.
    """

    cfg: TrainConfig
    mixup_config: MixupConfig
    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    generator: torch.Generator
    train_sets: list[TokenizedSet]
    per_set: int  # batches each set gives a step (:func:`batches_per_set`)
    steps_per_epoch: int  # optimiser steps of one epoch (:func:`steps_per_epoch`)
    batch_size: int  # rows of one global batch (over all processes)
    batch_columns: Columns | None
    out_dir: Path
    first_epoch: int = 0  # 0, or the epochs a resumed checkpoint had done
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per epoch done
    guard: StepGuard | None = None  # the NaN/inf guard (made in :func:`_start`)
    embedding_grad: KeptEmbeddingGradient | None = None  # one CPU process: kept embedding grad

    @property
    def ckpt(self) -> Path:
        return self.out_dir / CHECKPOINT


@dataclass(frozen=True)
class _Recording:
    """Where training dynamics go: ``mode`` for ``data``'s samples, appended to ``path``."""

    mode: DynamicsMode
    path: Path
    data: TokenizedSet
    task: str
    fingerprint: Any = None  # tdmixup.dynamics.fingerprint.DataFingerprint, stored with the table


def _check_dynamics_mode(mode: DynamicsMode | None, cfg: TrainConfig, mc: MixupConfig) -> None:
    """Refuse ``train_pass`` dynamics where a training pass does not see every sample once."""
    if mode == "train_pass" and mc.strategy == "mixup":
        raise ValueError(
            "strategy 'mixup' trains on mixed samples only, so it has no per-sample "
            "training-pass logits to record: use dynamics mode 'epoch_end' with it"
        )
    if mode == "train_pass" and cfg.steps_per_epoch is not None:
        raise ValueError(
            "steps_per_epoch cycles the training sets, so a training pass does not "
            "see every sample exactly once per epoch: record dynamics with mode "
            "'epoch_end' instead"
        )


def _start(
    model: Classifier,
    train_sets: list[TokenizedSet],
    cfg: TrainConfig,
    mixup_config: MixupConfig,
    out_dir: Path,
    accelerator: Any,
    *,
    resume: bool,
    batch_columns: Columns | None,
) -> _Loop:
    """AdamW, the linear warm-up schedule over all epochs' steps and the strategy's RNG (seeded
    with ``cfg.seed``), all restored from ``out_dir``'s checkpoint when resuming one; then
    ``model`` and the optimiser prepared by Accelerate."""
    from transformers import get_linear_schedule_with_warmup

    warn_if_bf16_is_slow(cfg, accelerator.device)
    if cfg.fp16 and accelerator.mixed_precision != "fp16":
        raise ValueError(
            "train.fp16 needs an accelerator made with make_accelerator(mixed_precision='fp16') "
            "(its gradient scaler)"
        )
    mc = train_sets[0].num_choices > 0
    batch_size = cfg.mc_batch_size if mc else cfg.batch_size
    per_set = batches_per_set(mixup_config.strategy, len(train_sets))
    mixup.check_batch_for_processes(mixup_config.strategy, batch_size, accelerator.num_processes)
    n_steps = steps_per_epoch(train_sets, batch_size, fixed=cfg.steps_per_epoch, per_set=per_set)
    optimizer = adamw(list(model.parameters()), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * n_steps * cfg.epochs), n_steps * cfg.epochs
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    first_epoch: int = 0
    history: list[dict[str, float]] = []
    ckpt = out_dir / CHECKPOINT
    if resume:
        checkpoint.recover(ckpt, accelerator)
    if resume and main_process_decides(accelerator, (ckpt / TRAINING_STATE).exists()):
        first_epoch, history = checkpoint.load(ckpt, model, optimizer, scheduler, generator)
        log.info("resuming %s after epoch %d", out_dir, first_epoch)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    return _Loop(
        cfg=cfg,
        mixup_config=mixup_config,
        accelerator=accelerator,
        model=wrapped,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        train_sets=train_sets,
        per_set=per_set,
        steps_per_epoch=n_steps,
        batch_size=batch_size,
        batch_columns=batch_columns,
        out_dir=out_dir,
        first_epoch=first_epoch,
        history=history,
        # fp16's gradient scaler skips steps with inf gradients by design: only the loss counts
        guard=StepGuard(accelerator.device, check_gradients=not cfg.fp16),
        embedding_grad=KeptEmbeddingGradient.attach(model, accelerator),
    )


def _train_epoch(loop: _Loop, epoch: int, recording: _Recording | None) -> EpochTotals:
    """One epoch's optimiser steps on this process's share of the planned batches, with a
    progress bar (main process) showing the running loss every :data:`LOG_EVERY` steps, when
    the tracker (``--report-to``) also gets the mean loss since its last point and the learning
    rate.

    The loop reads device values only every :data:`LOG_EVERY` steps and at the epoch's end
    (the loss for the bar and the tracker, the NaN/inf guard), so a GPU step queues without
    waiting for the previous one."""
    acc = loop.accelerator
    loop.model.train()
    plan = plan_epoch(
        loop.train_sets,
        loop.cfg,
        epoch,
        acc.num_processes,
        acc.process_index,
        loop.batch_size,
        per_set=loop.per_set,
        strategy=loop.mixup_config.strategy,
        mix_at=loop.mixup_config.mix_at,
    )
    zero = torch.zeros((), dtype=torch.float64, device=acc.device)
    totals = EpochTotals(hits=zero, judged=zero)
    keep_logits = recording is not None and recording.mode == "train_pass"
    bar = tqdm(
        plan,
        desc=f"epoch {epoch + 1}/{loop.cfg.epochs}",
        disable=not acc.is_main_process,
        leave=False,
    )
    track = tracking.tracking_on(acc)
    logged_loss, logged_steps = 0.0, 0  # the running sums at the tracker's last point
    assert loop.guard is not None
    for step, planned in enumerate(bar):
        batches = _collate_step(loop, planned)
        learning_rate = loop.scheduler.get_last_lr()[0]  # this step's (a float: no sync)
        out = _optimiser_step(loop, batches, epoch, step)
        totals.add(out, batches, keep_logits)
        if step % LOG_EVERY == 0:
            loop.guard.check(acc, epoch, loop.ckpt)
            loss_sum = totals.loss_sum()  # one read of the device sum every LOG_EVERY steps
            if acc.is_main_process:
                bar.set_postfix(loss=f"{loss_sum / max(totals.steps, 1):.4f}")
            if track:
                tracking.log_steps(
                    acc,
                    loss=(loss_sum - logged_loss) / (totals.steps - logged_steps),
                    learning_rate=float(learning_rate),
                    step=epoch * loop.steps_per_epoch + step + 1,
                )
                logged_loss, logged_steps = loss_sum, totals.steps
    loop.guard.check(acc, epoch, loop.ckpt)  # before the epoch's checkpoint is written
    return totals


def _collate_step(loop: _Loop, planned: list[PlannedBatch]) -> list[Batch]:
    """One step's batches, collated with ``batch_columns`` and on the device: ``per_set``
    batches from each training set, in ``train_sets`` order."""
    step_sets = [s for s in loop.train_sets for _ in range(loop.per_set)]
    return [
        to_device(
            _with_columns(collate(s, p.positions, p.weights), loop.batch_columns),
            loop.accelerator.device,
        )
        for s, p in zip(step_sets, planned, strict=True)
    ]


def _optimiser_step(loop: _Loop, batches: list[Batch], epoch: int, step: int) -> StepOutput:
    """The strategy's loss on ``batches`` (bfloat16/float16 autocast with ``cfg.bf16`` /
    ``cfg.fp16``), then backward (on one CPU process the word embeddings' gradient goes into a
    kept buffer: :class:`tdmixup.training.optim.KeptEmbeddingGradient`), gradient clipping (folded
    into the fused AdamW step: :func:`tdmixup.training.optim.clip_gradients`) and one AdamW and
    schedule step. A non-finite loss or gradient norm is flagged on the device and the fused AdamW
    step skips it (:class:`tdmixup.training.optim.StepGuard`, raised at the next check); a non-fused
    optimiser is checked on the host before its step."""
    acc, cfg, mc = loop.accelerator, loop.cfg, loop.mixup_config

    def step_fn(model: Classifier) -> StepOutput:
        # mixup.compute_step is looked up at each call (tests patch it)
        return mixup.compute_step(
            mc.strategy,
            model,
            batches,
            mc,
            loop.generator,
            pad_token_id=loop.train_sets[0].pad_token_id,
        )

    assert loop.guard is not None
    with step_autocast(cfg, acc.device):
        out = _through_forward(loop.model, step_fn)
    acc.backward(out.loss)
    if loop.embedding_grad is not None:
        loop.embedding_grad.densify()
    grad_norm = None
    if cfg.max_grad_norm > 0:
        grad_norm = clip_gradients(acc, loop.optimizer, loop.model.parameters(), cfg.max_grad_norm)
    found_inf = loop.guard.found_inf(out.loss, grad_norm, step)
    if acc.mixed_precision != "fp16" and not skip_step_if(loop.optimizer, found_inf):
        loop.guard.check(acc, epoch, loop.ckpt)  # a non-fused optimiser: check on the host
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    return out


def _through_forward(model: Any, step_fn: Callable[[Classifier], StepOutput]) -> StepOutput:
    """``step_fn(classifier)``, called through the prepared ``model``'s ``forward``.

    Why not call ``step_fn`` on the unwrapped classifier: with several processes ``model`` is a
    DistributedDataParallel wrapper, and DDP all-reduces the gradients of a backward pass only
    when its own ``forward`` ran first (that call arms the reducer's gradient hooks).
    A strategy step calls the classifier's ``embed`` / ``features`` / ``classify`` itself, often
    several times (two batches, mixing), so it is handed through DDP's ``forward`` to
    :meth:`Classifier.forward`, which runs ``step_fn(self)`` when given one. With one process
    it comes to ``step_fn(model)``.
    """
    return model(step_fn=step_fn)


def _end_epoch(
    loop: _Loop,
    epoch: int,
    totals: EpochTotals,
    start: float,
    recording: _Recording | None,
    on_epoch_end: EpochCallback | None,
    tokenizer: Any,
) -> None:
    """After an epoch's steps: its ``history`` entry (loss and accuracy over all processes),
    the dynamics recording, ``on_epoch_end``'s metrics, the log line (main process) and the
    checkpoint. ``start`` is the epoch's ``time.perf_counter()`` at its beginning."""
    acc = loop.accelerator
    model = acc.unwrap_model(loop.model)
    entry = epoch_entry(epoch, totals, acc)
    if recording is not None:
        _record_epoch(
            recording.mode,
            recording.path,
            epoch,
            recording.data,
            model,
            acc,
            loop.cfg.eval_batch_size,
            totals,
            recording.task,
            precision_of(loop.cfg),
            recording.fingerprint,
        )
    if on_epoch_end is not None:
        entry.update(on_epoch_end(epoch, model))
    entry["seconds"] = time.perf_counter() - start  # this process's (the main one's is saved)
    loop.history.append(entry)
    if acc.is_main_process:
        log.info("%s", epoch_line(loop.out_dir, entry, loop.cfg.epochs))
    if tracking.tracking_on(acc):
        tracking.log_epoch(acc, entry, step=(epoch + 1) * loop.steps_per_epoch)
    checkpoint.save(
        loop.ckpt,
        model,
        tokenizer,
        loop.optimizer,
        loop.scheduler,
        loop.generator,
        epoch + 1,
        loop.history,
        acc,
    )


def _with_columns(batch: Batch, columns: Columns | None) -> Batch:
    return batch if columns is None else {**batch, **columns(batch)}


# --- dynamics ------------------------------------------------------------------------------
def _record_epoch(
    mode: DynamicsMode,
    path: Path,
    epoch: int,
    data: TokenizedSet,
    model: Classifier,
    accelerator: Any,
    batch_size: int,
    totals: EpochTotals,
    task: str,
    precision: str,
    fingerprint: Any = None,
) -> None:
    from tdmixup.dynamics.table import append_epoch

    if mode == "epoch_end":
        ids, logits = predict_logits(
            model,
            data,
            batch_size=batch_size,
            accelerator=accelerator,
            desc="dynamics",
            precision=precision,
        )
    else:
        local_ids, local_logits = totals.seen_rows()
        ids, logits = gather_by_id(local_ids, local_logits, accelerator, expected=data.sample_ids)
        keep = np.isin(ids, data.sample_ids)
        ids, logits = ids[keep], logits[keep]
    if accelerator.is_main_process:
        gold = data.labels[data.positions_of(ids)]
        extra = fingerprint.append_kwargs(ids) if fingerprint is not None else {}
        append_epoch(
            path,
            epoch=epoch,
            sample_ids=ids,
            gold=gold,
            logits=logits,
            mode=mode,
            task=task,
            **extra,
        )
    accelerator.wait_for_everyone()
