"""A training stage's epoch checkpoint: written atomically, put back after a kill, loaded to resume.

``<stage>/checkpoint/`` (:data:`tdmixup.core.layout.CHECKPOINT`) holds the model of the last
finished epoch (:func:`tdmixup.model.classifier.save_classifier`), ``training_state.pt`` (optimizer,
scheduler and every RNG state, and the epochs done) and ``train_log.json`` (the per-epoch history).
:func:`tdmixup.training.loop.train` calls :func:`save` after each epoch and, when resuming,
:func:`recover` then :func:`load`; the three are looked up on this module at each call.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmixup.core.layout import TRAIN_LOG, TRAINING_STATE
from tdmixup.core.runio import read_json, write_json
from tdmixup.model.classifier import Classifier, load_classifier, save_classifier


def save(
    ckpt: Path,
    model: Classifier,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    generator: torch.Generator,
    epochs_done: int,
    history: list[dict[str, float]],
    accelerator: Any,
) -> None:
    """Write ``checkpoint/`` atomically (temp folder + rename): a kill never leaves half of one."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_classifier(model, tokenizer, tmp)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "epochs_done": epochs_done,
                "cuda_rng": (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None),
            },
            tmp / TRAINING_STATE,
        )
        write_json(tmp / TRAIN_LOG, history)
        old = ckpt.with_name(ckpt.name + ".old")
        shutil.rmtree(old, ignore_errors=True)  # left over when a kill interrupted the last save
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def recover(ckpt: Path, accelerator: Any) -> None:
    """Put back ``checkpoint.old`` when a kill fell between the two renames of
    :func:`save` (then it is complete and no ``checkpoint/`` exists)."""
    old = ckpt.with_name(ckpt.name + ".old")
    if accelerator.is_main_process and not ckpt.exists() and (old / TRAINING_STATE).exists():
        old.rename(ckpt)
    accelerator.wait_for_everyone()


def load(
    ckpt: Path, model: Classifier, optimizer: Any, scheduler: Any, generator: torch.Generator
) -> tuple[int, list[dict[str, float]]]:
    """Restore ``model``'s weights, the optimizer, scheduler and every RNG state from ``ckpt``;
    returns the epochs done and the per-epoch history."""
    saved, _ = load_classifier(ckpt)
    # load_classifier's AutoModel builds a pooler that the trained model (built without one) lacks
    wanted = model.state_dict().keys()
    model.load_state_dict({k: v for k, v in saved.state_dict().items() if k in wanted})
    state = torch.load(ckpt / TRAINING_STATE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epochs_done"]), list(read_json(ckpt / TRAIN_LOG))
