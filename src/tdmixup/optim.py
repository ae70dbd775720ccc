"""An optimiser step's pieces besides the strategy's loss: fused AdamW, bfloat16 autocast, and
the guards that stop training with :class:`TrainingError` before a NaN/inf reaches the weights.

:func:`tdmixup.training.train` builds the optimiser with :func:`adamw`, runs each step's forward
pass in :func:`bf16_autocast`, and checks the loss (:func:`check_finite_loss`, agreed over
processes) before ``backward`` and the clipped gradient norm (:func:`check_finite_gradients`)
before ``optimizer.step()``. The error names the epoch and step and whether a checkpoint is kept.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from tdmixup.config import TrainConfig

log = logging.getLogger("tdmixup.training")


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


def bf16_autocast(cfg: TrainConfig, device: Any) -> Any:
    """bfloat16 autocast of a training step's forward pass when ``cfg.bf16`` (a no-op context
    otherwise). Matmuls run in bfloat16 (AMX on recent Intel CPUs), softmax/log-softmax and the
    losses in fp32; the backward pass follows the forward's dtypes; parameters and their
    gradients stay fp32. Train-pass logits (dynamics, AUM margins) are bfloat16-rounded."""
    return torch.autocast(
        device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16
    )


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
    without :func:`cpu_has_native_bf16`: the run is correct but many times slower than fp32."""
    if not cfg.bf16 or torch.device(device).type != "cpu" or cpu_has_native_bf16():
        return False
    log.warning(
        "bf16=True on a CPU without native bfloat16 (torch capability %s): training steps run "
        "many times slower than fp32 (13-18x measured on an AMD EPYC with AVX2); "
        "set TrainConfig.bf16=False (leave out --bf16) unless this is deliberate",
        torch.backends.cpu.get_cpu_capability(),
    )
    return True


def check_finite_loss(
    loss: torch.Tensor, accelerator: Any, epoch: int, step: int, ckpt: Path
) -> None:
    """Stop before ``backward`` when the step's loss is NaN/inf on any process (every process
    then raises alike). ``epoch`` and ``step`` are 0-based; ``ckpt`` is the stage's checkpoint.
    """
    bad = torch.tensor([0.0 if torch.isfinite(loss.detach()) else 1.0], device=loss.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if float(bad) > 0:
        raise TrainingError(
            f"non-finite loss ({float(loss.detach()):.4g}) at epoch {epoch + 1}, step {step + 1}; "
            f"{_kept(ckpt)}. Lower the learning rate or check the data for empty/garbled rows."
        )


def check_finite_gradients(
    grad_norm: torch.Tensor | float | None, loss: torch.Tensor, epoch: int, step: int, ckpt: Path
) -> None:
    """Stop before ``optimizer.step()`` writes NaN into the weights from a finite loss.

    ``grad_norm`` is the total norm that gradient clipping computed (already reduced over
    processes, so every process decides alike); clipping a NaN norm would scale every
    gradient to NaN.
    """
    if grad_norm is None or math.isfinite(float(grad_norm)):
        return
    raise TrainingError(
        f"non-finite gradient norm ({float(grad_norm):.4g}) at epoch {epoch + 1}, step {step + 1} "
        f"although the loss was finite ({float(loss.detach()):.4g}); {_kept(ckpt)}. Check custom "
        "layers or losses for operations with undefined gradients (sqrt, log or division at 0)."
    )


def _kept(ckpt: Path) -> str:
    return (
        f"the last good checkpoint is kept at {ckpt}"
        if ckpt.exists()
        else "no checkpoint was written yet"
    )
