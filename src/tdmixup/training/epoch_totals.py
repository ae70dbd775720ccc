"""What an epoch's optimiser steps add up to, on each process and over all of them.

:class:`EpochTotals` keeps one epoch's running sums on this process (loss, correctly classified
unmixed rows, and the ``train_pass`` dynamics' logits by sample id) without a device sync per
step; at the end of the epoch :func:`epoch_entry` reduces loss and accuracy over the processes
into the epoch's ``history`` entry, and :func:`epoch_line` writes that entry as the log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmixup.strategies.mixing import Batch, StepOutput


@dataclass
class EpochTotals:
    """Running sums of one epoch on this process, reduced over processes at its end.

    Everything a step adds stays on the device (no host-device sync per step): ``hits`` /
    ``judged`` (float64 scalars) count the correctly classified and all real unmixed rows,
    ``loss`` (float64 scalar, None before the first step) sums the steps' losses;
    ``seen_ids`` / ``seen_logits`` / ``seen_real`` keep the ``train_pass`` dynamics (``[r]`` ids,
    ``[r, C]`` logits and ``[r]`` real-row mask per step), copied to the host once by
    :meth:`seen_rows`.
    """

    hits: torch.Tensor
    judged: torch.Tensor
    loss: torch.Tensor | None = None
    steps: int = 0
    seen_ids: list[torch.Tensor] = field(default_factory=list)
    seen_logits: list[torch.Tensor] = field(default_factory=list)
    seen_real: list[torch.Tensor] = field(default_factory=list)

    def add(self, out: StepOutput, batches: list[Batch], keep_logits: bool) -> None:
        """Count one step: its loss, its unmixed rows' accuracy (strategy ``mixup`` has none)
        and, with ``keep_logits``, their logits by sample id."""
        step_loss = out.loss.detach().reshape(()).to(self.hits.device, torch.float64)
        self.loss = step_loss if self.loss is None else self.loss + step_loss
        self.steps += 1
        if out.logits is None:
            return
        hit, n = _correct_rows(out.logits, batches)
        self.hits, self.judged = self.hits + hit, self.judged + n
        if keep_logits and out.sample_ids is not None:
            self.seen_ids.append(out.sample_ids)
            self.seen_logits.append(out.logits.detach().float())
            self.seen_real.append(_real_rows(out.sample_ids, batches).to(out.sample_ids.device))

    def loss_sum(self) -> float:
        """The steps' summed loss on this process (one sync)."""
        return 0.0 if self.loss is None else float(self.loss)

    def mean_loss(self) -> float:
        """The mean step loss so far on this process (one sync; for the progress bar)."""
        return self.loss_sum() / max(self.steps, 1)

    def seen_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [r], logits [r, C])`` of the real rows the ``train_pass`` steps saw, on the
        host (one copy; weight-0 dummy rows dropped)."""
        if not self.seen_ids:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        real = torch.cat(self.seen_real).cpu().numpy()
        ids = torch.cat(self.seen_ids).cpu().numpy()[real]
        return ids, torch.cat(self.seen_logits).cpu().numpy()[real]


def epoch_entry(epoch: int, totals: EpochTotals, accelerator: Any) -> dict[str, float]:
    """``{"epoch" (1-based), "train_loss", "steps"[, "train_accuracy"]}`` of one epoch, the
    loss and accuracy over all processes (``steps`` is this process's count)."""
    loss = _mean_over_processes(totals.loss_sum(), accelerator) / max(totals.steps, 1)
    entry: dict[str, float] = {"epoch": epoch + 1, "train_loss": loss, "steps": totals.steps}
    counts = _sum_over_processes(torch.stack([totals.hits, totals.judged]), accelerator)
    hits, judged = counts.tolist()
    if judged > 0:
        entry["train_accuracy"] = hits / judged
    return entry


def epoch_line(out_dir: Path, entry: dict[str, float], epochs: int) -> str:
    """One epoch of ``history`` as a log line, e.g.
    ``runs/demo/stage1_full: epoch 2/3, loss 0.8123, train accuracy 61.2 %, 14.2 s``.

    The accuracy is the running accuracy of the epoch's training batches (dropout on, weights
    changing), over unmixed rows; ``dev_accuracy`` and other ``on_epoch_end`` metrics follow.
    """
    parts = [f"epoch {int(entry['epoch'])}/{epochs}", f"loss {entry['train_loss']:.4f}"]
    if "train_accuracy" in entry:
        parts.append(f"train accuracy {100 * entry['train_accuracy']:.1f} %")
    known = {"epoch", "train_loss", "train_accuracy", "steps", "seconds"}
    parts += [
        f"{k.replace('_', ' ')} {v:.4g}"
        for k, v in entry.items()
        if k not in known and isinstance(v, int | float)
    ]
    parts.append(f"{entry.get('seconds', 0.0):.1f} s")
    return f"{out_dir}: " + ", ".join(parts)


def _correct_rows(
    logits: torch.Tensor, batches: list[dict[str, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, counted) over the real rows (weight > 0) of a step: logits ``[R, C]`` against
    the labels of ``batches`` concatenated in order (``R`` rows)."""
    labels = torch.cat([b["labels"] for b in batches]).to(logits.device)
    if len(labels) != len(logits):
        none = torch.zeros((), dtype=torch.float64, device=logits.device)
        return none, none
    real = torch.cat([b["weight"] for b in batches]).to(logits.device) > 0
    correct = (logits.argmax(dim=-1) == labels) & real
    return correct.sum().double(), real.sum().double()


def _real_rows(sample_ids: torch.Tensor, batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Mask of rows with weight > 0 (drops the dummy rows of uneven multi-process batches)."""
    weights = torch.cat([b["weight"] for b in batches])
    if len(weights) != len(sample_ids):
        return torch.ones(len(sample_ids), dtype=torch.bool, device=sample_ids.device)
    return weights > 0


def _sum_over_processes(values: torch.Tensor, accelerator: Any) -> torch.Tensor:
    """Element-wise sum of a small tensor over processes (itself with one process), on the CPU."""
    if accelerator.num_processes > 1:
        values = accelerator.reduce(values, reduction="sum")
    return values.detach().cpu()


def _mean_over_processes(value: float, accelerator: Any) -> float:
    """Mean of a per-process number over processes: a process's step loss is its share of the
    global batch scaled by world_size, so the global batch's mean loss is the mean over
    processes."""
    if accelerator.num_processes == 1:
        return value
    return float(
        accelerator.reduce(
            torch.tensor([value], dtype=torch.float64, device=accelerator.device), reduction="mean"
        )
    )
