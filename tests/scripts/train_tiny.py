"""Train the tiny test model in a child process: for the kill -9 resume test and torchrun runs.

Usage (see tests/test_training.py)::

    python tests/scripts/train_tiny.py --model-dir M --out OUT [--resume] [--epoch-sleep S]
    torchrun --nproc_per_node 2 tests/scripts/train_tiny.py --model-dir M --out OUT --dynamics both

Each run trains with :func:`_tiny.train_tiny` into ``OUT/<mode>/`` (one run per dynamics mode),
the main process writes the final weights to ``OUT/<mode>/final.npz``, the history and the
0-based epochs this run trained (``history.json``, ``epochs_run.json``), and every process writes
the paths it created, opened for writing, renamed or removed under ``OUT`` to
``OUT/../writes.rank<R>.json`` (outside ``OUT``, via a Python audit hook).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "shutil.move"}


def _record_writes(root: Path, sink: list[str]) -> None:
    prefix = str(root.resolve())

    def hook(event: str, args: tuple) -> None:
        if event == "open" and len(args) >= 2:
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None
                and isinstance(flags, int)
                and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if not writing:
                return
        elif event not in _WRITE_EVENTS:
            return
        for arg in args[:2]:
            if isinstance(arg, (str, os.PathLike)) and os.path.abspath(os.fspath(arg)).startswith(
                prefix
            ):
                sink.append(f"{event} {os.fspath(arg)}")
                return

    sys.addaudithook(hook)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=37)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--strategy", default="none")
    parser.add_argument(
        "--dynamics", choices=["epoch_end", "train_pass", "both"], default="train_pass"
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--epoch-sleep",
        type=float,
        default=0.0,
        help="seconds to sleep at the end of every epoch but the first, before its checkpoint",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from _tiny import train_tiny, weights_of
    from tdmixup.training.loop import make_accelerator

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    writes: list[str] = []
    _record_writes(args.out, writes)
    accelerator = make_accelerator()
    modes = ["epoch_end", "train_pass"] if args.dynamics == "both" else [args.dynamics]
    epochs_run: list[int] = []

    def at_epoch_end(epoch: int, model: object) -> dict[str, float]:
        epochs_run.append(epoch)
        if epoch >= 1:  # after the first checkpoint: a window in which a test can kill this run
            time.sleep(args.epoch_sleep)
        return {}

    for mode in modes:
        result = train_tiny(
            args.model_dir,
            args.out / mode,
            n=args.n,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            dropout=args.dropout,
            strategy=args.strategy,
            dynamics_mode=mode,
            resume=args.resume,
            accelerator=accelerator,
            on_epoch_end=at_epoch_end,
        )
        if accelerator.is_main_process:
            np.savez(args.out / mode / "final.npz", **weights_of(result.model))  # type: ignore[arg-type]
            (args.out / mode / "history.json").write_text(json.dumps(result.history))
            (args.out / mode / "epochs_run.json").write_text(json.dumps(epochs_run))
        epochs_run.clear()
    rank = accelerator.process_index
    (args.out.parent / f"writes.rank{rank}.json").write_text(json.dumps(writes))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
