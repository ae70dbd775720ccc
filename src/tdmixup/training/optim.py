"""An optimiser step's pieces besides the strategy's loss: fused AdamW, the precision settings
(bfloat16/float16 autocast, TF32 on CUDA, warnings where a precision is slow), and the guards
that stop training with :class:`TrainingError` before a NaN/inf reaches the weights.

:func:`tdmixup.training.loop.train` builds the optimiser with :func:`adamw`, runs each step's
forward pass in :func:`step_autocast`, clips with :func:`clip_gradients` (the clipping factor goes
to the fused step instead of a pass that rescales every gradient first), and flags a non-finite loss
or gradient norm on the device (:class:`StepGuard`): the fused AdamW step skips a flagged step, and
the guard raises once per log interval or epoch, naming the epoch and step and whether a
checkpoint is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
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


def clip_gradients(
    accelerator: Any, optimizer: Any, parameters: Iterable[torch.nn.Parameter], max_norm: float
) -> torch.Tensor:
    """Clip the gradients' total 2-norm to ``max_norm``; returns the norm before clipping (a
    scalar tensor on the device, as ``clip_grad_norm_`` does). No host-device sync.

    With a fused AdamW and no float16 gradient scaler, the gradients are not rescaled here: the
    clipping factor goes to the next ``optimizer.step()`` as its ``grad_scale`` (the hook of
    torch's gradient scaler), and the fused kernel divides each gradient by it as it reads it.
    That saves ``clip_grad_norm_``'s separate in-place multiply of every gradient, which it runs
    even when nothing is clipped (a read and a write of MiniLM's 90 MB of gradients per step:
    ~1.5 % of a CPU training step, more where the step is memory-bound).
    The update is the same: bitwise when nothing is clipped (the factor is exactly 1), within
    float32 rounding when it is (``g / (1/c)`` instead of ``g * c``, ``c = min(1, max_norm /
    (norm + 1e-6))`` as in torch). Otherwise (a non-fused optimiser, ``--fp16``'s scaler, a torch
    without ``get_total_norm``) this is ``accelerator.clip_grad_norm_``.

    Args:
        accelerator: the run's :class:`accelerate.Accelerator`.
        optimizer: the prepared optimiser whose next step applies the clipping.
        parameters: the model's parameters.
        max_norm: the largest total gradient norm (> 0).
    """
    inner = _fused_inner(optimizer)
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if inner is None or accelerator.mixed_precision == "fp16" or total_norm is None:
        return accelerator.clip_grad_norm_(parameters, max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = total_norm(grads, 2.0, error_if_nonfinite=False, foreach=None)
    coefficient = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # torch's clip coefficient
    inner.grad_scale = (1.0 / coefficient).to(torch.float32).reshape(())
    return norm


class KeptEmbeddingGradient:
    """The word embeddings' gradient added into one dense buffer kept across steps (CPU).

    A dense embedding backward allocates and zeroes a new ``[vocab, H]`` gradient at every step
    (MiniLM: 30522 × 384, 47 MB), and on CPU that memory comes fresh from the kernel each time
    (glibc maps blocks over 32 MB anew and unmaps them when freed): zeroing it took ~29 ms of a
    ~600 CPU-ms MiniLM step on 2 cores (torch.profiler, ``aten::fill_`` of ``[30522, 384]``),
    ~5 %, mostly page faults (the same zeroing of a kept 47 MB array: ~5 ms), and the process's
    page faults varied 3x between identical runs. With this, the embedding emits a sparse
    gradient (one row per token of the step) and :meth:`densify` adds it into the kept buffer,
    which becomes the weight's ``.grad`` for clipping and the AdamW step: the same values, bitwise
    for one forward pass per step (the rows are added in the same order as the dense backward);
    for strategies that pass two batches through the encoder, rows seen in both are summed in
    one run instead of two partial sums (float32 rounding).

    Only for one process on CPU (:meth:`attach` returns None otherwise): a CUDA allocator
    reuses its blocks, and DistributedDataParallel all-reduces the dense gradient itself.
    :meth:`close` gives the embedding its dense backward back.
    """

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        self.embedding = embedding
        self.buffer: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None  # the rows the last step wrote
        embedding.sparse = True

    @classmethod
    def attach(cls, model: Any, accelerator: Any) -> KeptEmbeddingGradient | None:
        """For ``model``'s (a :class:`tdmixup.model.classifier.Classifier`) input word embeddings,
        when training runs in one process on CPU and they are a plain dense ``nn.Embedding``."""
        if accelerator.num_processes != 1 or torch.device(accelerator.device).type != "cpu":
            return None
        get = getattr(model.encoder, "get_input_embeddings", None)
        embedding = get() if callable(get) else None
        if (
            not isinstance(embedding, torch.nn.Embedding)
            or embedding.sparse
            or embedding.max_norm is not None
            or not embedding.weight.requires_grad
        ):
            return None
        return cls(embedding)

    def densify(self) -> None:
        """After the backward pass: the sparse gradient, added into the buffer (whose rows the
        last step wrote are zeroed first; the others are 0, and the AdamW step's ``grad_scale``
        division or skip leaves them 0), becomes the weight's ``.grad`` (nothing to do when it
        has none or a dense one)."""
        weight = self.embedding.weight
        grad = weight.grad
        if grad is None or not grad.is_sparse:
            return
        if self.buffer is None:
            self.buffer = torch.zeros_like(weight)
        elif self.rows is not None:  # the only non-zero rows: the AdamW step keeps 0 at 0
            self.buffer.index_fill_(0, self.rows, 0.0)
        self.rows = grad._indices()[0]
        self.buffer.index_add_(0, self.rows, grad._values())
        weight.grad = self.buffer

    def close(self) -> None:
        """Back to the dense backward; frees the buffer."""
        self.embedding.sparse = False
        self.buffer = self.rows = None


def _fused_inner(optimizer: Any) -> Any:
    """The torch optimiser behind Accelerate's wrapper when it is a fused one (whose step reads
    ``grad_scale`` and ``found_inf``), else None."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return inner if inner.defaults.get("fused") else None


def skip_step_if(optimizer: Any, found_inf: torch.Tensor) -> bool:
    """Make the next ``optimizer.step()`` a no-op on the device when ``found_inf`` is 1 (fused
    AdamW's ``found_inf``). Returns False (nothing set) for a non-fused optimiser, whose caller
    must check the step on the host instead."""
    inner = _fused_inner(optimizer)
    if inner is None:
        return False
    inner.found_inf = found_inf
    return True


def _kept(ckpt: Path) -> str:
    return (
        f"the last good checkpoint is kept at {ckpt}"
        if ckpt.exists()
        else "no checkpoint was written yet"
    )
