"""An optimiser step's pieces besides the strategy's loss: fused AdamW, the precision settings
(bfloat16/float16 autocast, TF32 on CUDA, warnings where a precision is slow), and the guards
that stop training with :class:`TrainingError` before a NaN/inf reaches the weights.

:func:`tdmixup.training.loop.train` builds the optimiser with :func:`adamw`, runs each step's
forward pass in :func:`step_autocast`, and flags a non-finite loss or clipped gradient norm on the
device (:class:`StepGuard`): the fused AdamW step skips a flagged step, and the guard raises once
per log interval or epoch, naming the epoch and step and whether a checkpoint is kept.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from tdmixup.core.config import TrainConfig
from tdmixup.model.predict import autocast_for

log = logging.getLogger("tdmixup.training.loop")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


def adamw(
    params: list[torch.nn.Parameter], *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it (CPU, CUDA, ...): on CPU its step takes a seventh of the
    time of the default per-tensor loop (MiniLM: 16 vs 115 ms), i.e. ~20 % of a training step."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def step_autocast(cfg: TrainConfig, device: Any) -> Any:
    """Autocast of a training step's forward pass: bfloat16 with ``cfg.bf16``, float16 with
    ``cfg.fp16`` (CUDA only, its gradient scaler is Accelerate's), a no-op context otherwise.

    Matmuls run in the half type (AMX on recent Intel CPUs, tensor cores on GPUs),
    softmax/log-softmax and the losses in fp32; the backward pass follows the forward's dtypes;
    parameters and their gradients stay fp32. Train-pass logits (dynamics, AUM margins) are
    rounded to the half type."""
    return autocast_for(precision_of(cfg), device)


def bf16_autocast(cfg: TrainConfig, device: Any) -> Any:
    """:func:`step_autocast` (kept for callers of the name from before ``fp16`` existed)."""
    return step_autocast(cfg, device)


def precision_of(cfg: TrainConfig) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"``: the run's compute precision."""
    return "bf16" if cfg.bf16 else "fp16" if cfg.fp16 else "fp32"


def enable_tf32(device: Any) -> bool:
    """On CUDA, let fp32 matmuls and convolutions use TF32 tensor cores (Ampere and later: A100,
    H100; 10-bit mantissa inputs, fp32 accumulation, the default of most training frameworks).

    Returns whether TF32 is now on (False on CPU and on GPUs before compute capability 8.0,
    which have no TF32 units); :func:`tdmixup.core.runio.environment_info` records the flag in each
    run's ``config.json``."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability(torch.device(device))[0] < 8:
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


def warn_if_gpu_bf16_is_emulated(cfg: TrainConfig, device: Any) -> bool:
    """Log one warning line (and return True) when ``cfg.bf16`` runs on a CUDA GPU without
    native bfloat16 (compute capability below 8.0: V100, T4), where it is emulated and slow."""
    dev = torch.device(device)
    if not cfg.bf16 or dev.type != "cuda":
        return False
    major, minor = torch.cuda.get_device_capability(dev)
    if major >= 8:
        return False
    log.warning(
        "bf16=True on %s (compute capability %d.%d < 8.0): bfloat16 is emulated there and slow; "
        "use --fp16 (float16 with a gradient scaler) instead",
        torch.cuda.get_device_name(dev),
        major,
        minor,
    )
    return True


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has oneDNN's bfloat16 path (AVX-512 with BF16/AMX on Intel; not AVX2-only
    CPUs such as the AMD EPYC measured below). Without it bfloat16 is not accelerated: a MiniLM
    training step under bf16 autocast took 7.8 s against fp32's 0.44 s (18x slower) on an idle
    AMD EPYC with AVX2, 13x beside a running job (``benchmarks/results/
    speed_options_amd_epyc_avx2.json``), against 1.47x *faster* on an Intel Xeon with AMX."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def warn_if_bf16_is_slow(cfg: TrainConfig, device: Any) -> bool:
    """Log a warning (and return True) when ``cfg.bf16`` asks for bfloat16 autocast on a CPU
    without :func:`cpu_has_native_bf16` or a GPU before compute capability 8.0
    (:func:`warn_if_gpu_bf16_is_emulated`): the run is correct but many times slower."""
    if torch.device(device).type == "cuda":
        return warn_if_gpu_bf16_is_emulated(cfg, device)
    if not cfg.bf16 or torch.device(device).type != "cpu" or cpu_has_native_bf16():
        return False
    log.warning(
        "bf16=True on a CPU without native bfloat16 (torch capability %s): training steps run "
        "many times slower than fp32 (13-18x measured on an AMD EPYC with AVX2); "
        "set TrainConfig.bf16=False (leave out --bf16) unless this is deliberate",
        torch.backends.cpu.get_cpu_capability(),
    )
    return True


class StepGuard:
    """The NaN/inf guards of the optimiser steps, without a host-device sync per step.

    Each step, :meth:`found_inf` flags (on the device) a non-finite loss or clipped gradient
    norm and remembers the first such step; the fused AdamW step reads the flag
    (``optimizer.found_inf``, the mechanism of torch's gradient scaler) and leaves the weights
    and its state untouched on a flagged step. :meth:`check` reads the record once per log
    interval and at the epoch's end (one sync, one collective over processes) and raises
    :class:`TrainingError` naming the first bad step, before a checkpoint is written.

    ``record`` is ``[step, loss, grad_norm]`` (float64, ``step`` -1 while all steps were finite).
    """

    def __init__(self, device: Any, *, check_gradients: bool = True) -> None:
        self.record = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64, device=device)
        self.check_gradients = check_gradients

    def found_inf(
        self, loss: torch.Tensor, grad_norm: torch.Tensor | float | None, step: int
    ) -> torch.Tensor:
        """A float32 scalar on the device: 1.0 when this step's loss (or, when checked, the
        gradient norm) is NaN/inf, else 0.0. Records the first such step. No sync."""
        loss64 = loss.detach().reshape(()).to(self.record.dtype)
        bad = ~torch.isfinite(loss64)
        norm64 = torch.zeros((), dtype=self.record.dtype, device=self.record.device)
        if self.check_gradients and isinstance(grad_norm, torch.Tensor):
            norm64 = grad_norm.detach().reshape(()).to(self.record.device, self.record.dtype)
            bad = bad | ~torch.isfinite(norm64)
        elif self.check_gradients and grad_norm is not None:
            norm64 = torch.tensor(float(grad_norm), dtype=self.record.dtype)
            bad = bad | ~torch.isfinite(norm64)
        first = bad & (self.record[0] < 0)
        step_t = torch.full((), float(step), dtype=self.record.dtype, device=self.record.device)
        self.record = torch.where(first, torch.stack([step_t, loss64, norm64]), self.record)
        return bad.to(torch.float32)

    def check(self, accelerator: Any, epoch: int, ckpt: Path) -> None:
        """Raise :class:`TrainingError` when a step of this epoch (on any process) was not
        finite; every process raises alike. ``epoch`` is 0-based."""
        record = self.record
        if accelerator.num_processes > 1:
            record = accelerator.gather(record[None]).reshape(-1, 3)
            flagged = record[record[:, 0] >= 0]
            record = flagged[flagged[:, 0].argmin()] if len(flagged) else record[0]
        step, loss, norm = record.tolist()
        if step < 0:
            return
        self.record = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64, device=self.record.device)
        where = f"at epoch {epoch + 1}, step {int(step) + 1}"
        if not math.isfinite(loss):
            raise TrainingError(
                f"non-finite loss ({loss:.4g}) {where}; {_kept(ckpt)}. Lower the learning rate "
                "or check the data for empty/garbled rows."
            )
        raise TrainingError(
            f"non-finite gradient norm ({norm:.4g}) {where} although the loss was finite "
            f"({loss:.4g}); {_kept(ckpt)}. Check custom layers or losses for operations with "
            "undefined gradients (sqrt, log or division at 0)."
        )


def skip_step_if(optimizer: Any, found_inf: torch.Tensor) -> bool:
    """Make the next ``optimizer.step()`` a no-op on the device when ``found_inf`` is 1 (fused
    AdamW's ``found_inf``). Returns False (nothing set) for a non-fused optimiser, whose caller
    must check the step on the host instead."""
    inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
    if not inner.defaults.get("fused"):
        return False
    inner.found_inf = found_inf
    return True


def _kept(ckpt: Path) -> str:
    return (
        f"the last good checkpoint is kept at {ckpt}"
        if ckpt.exists()
        else "no checkpoint was written yet"
    )
