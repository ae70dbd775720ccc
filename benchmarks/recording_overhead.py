"""Cost of recording training dynamics: ``train_pass`` and ``epoch_end`` against plain training.

Each run is one call of :func:`tdmixup.training.loop.train` (fresh model, same seed, same data, same
number of steps) on the first ``--train-size`` SNLI training pairs, in one of three modes:

* ``none`` — no dynamics;
* ``train_pass`` — keep the logits each training step already computed, write them per epoch
  (Dataset Cartography's way); target: at most 3 % slower than ``none``;
* ``epoch_end`` — an extra inference pass over the training set after each epoch (the paper's
  Eq. 1); its cost is roughly that pass.

The modes run in alternating order (forward, then reversed) over ``--rounds`` rounds after one
untimed warm-up run; the result is the median wall time of ``train`` per mode and its overhead
against ``none``. Every mode writes the same per-epoch checkpoint (model + optimizer), so that
cost is in all three times equally; it is also timed, and the overhead is reported without it
too. The recording itself (the inference pass or gathering the kept logits, plus the Parquet
append) and the checkpoint writes are timed inside the run by wrapping
``tdmixup.training.loop._record_epoch`` and ``tdmixup.training.checkpoint.save`` with a timer
(measurement hooks; nothing else changes).

Full size (about 4 min on 2 quiet cores with MiniLM; ~2 min with --num-hidden-layers 3)::

    .venv/bin/python benchmarks/recording_overhead.py

Smoke: ``--train-size 64 --rounds 1 --model <tiny dir> --out /tmp/x.json``. Skips (exit 0,
nothing written) when the SNLI training file is not in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tdmixup.training.checkpoint as checkpoint
import tdmixup.training.loop as training
from tdmixup.core.config import DEFAULT_MODEL, MixupConfig, ModelConfig, TrainConfig
from tdmixup.core.layout import DYNAMICS
from tdmixup.core.runio import environment_info, write_json
from tdmixup.data.sources import SNLI_TRAIN, find_data_file

RESULTS = Path(__file__).resolve().parent / "results" / "recording_overhead.json"
MODES = ("none", "train_pass", "epoch_end")
TARGET_PCT = 3.0
HOOKS: dict[str, tuple[Any, str]] = {
    "_record_epoch": (training, "_record_epoch"),
    "_save_checkpoint": (checkpoint, "save"),
}
"""The wrapped functions: ``training._record_epoch`` and ``checkpoint.save`` (module, name)."""
HOOKED: dict[str, list[float]] = {name: [] for name in HOOKS}
"""Wall seconds of each call, per wrapped function, in the current run."""


def _hook(name: str) -> None:
    """Replace the function ``HOOKS[name]`` by a timed call of it (``train()`` looks both up on
    their modules at every epoch)."""
    module, attribute = HOOKS[name]
    original = getattr(module, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            HOOKED[name].append(time.perf_counter() - start)

    setattr(module, attribute, timed)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=800)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--warmup-size", type=int, default=64, help="Samples of the untimed warm-up run (0: none)."
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args()


def run_once(
    mode: str, data: Any, args: argparse.Namespace, tokenizer: Any, accelerator: Any, work: Path
) -> dict[str, Any]:
    """Train a fresh model once in ``mode``; wall seconds of ``train`` and of each epoch's
    recording."""
    from tdmixup.model.classifier import build_classifier

    training.seed_everything(args.seed)
    model = build_classifier(
        ModelConfig(name_or_path=args.model, num_hidden_layers=args.num_hidden_layers), "pair", 3
    )
    out_dir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    for calls in HOOKED.values():
        calls.clear()
    load = os.getloadavg()[0]
    result = training.train(
        model,
        [data],
        out_dir=out_dir,
        accelerator=accelerator,
        tokenizer=tokenizer,
        task_name="snli",
        train_config=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
        ),
        mixup_config=MixupConfig(strategy="none"),
        dynamics_mode=None if mode == "none" else mode,  # type: ignore[arg-type]
        dynamics_path=None if mode == "none" else out_dir / DYNAMICS,
    )
    accelerator.free_memory()  # drop the references prepare() kept, so runs do not pile up models
    shutil.rmtree(out_dir)
    return {
        "mode": mode,
        "seconds": result.seconds,
        "recording_seconds_per_epoch": list(HOOKED["_record_epoch"]),
        "checkpoint_seconds": sum(HOOKED["_save_checkpoint"]),
        "load_average_1min_before": load,
    }


def main() -> None:
    args = parse_args()
    path = find_data_file(SNLI_TRAIN, download=False)
    if path is None:
        print(
            f"skipped: {SNLI_TRAIN} not found in ../shared/data "
            "(or $TDMIXUP_DATA_DIR); nothing written"
        )
        return
    import transformers

    from tdmixup.data.collate import tokenize
    from tdmixup.data.readers import read_nli_jsonl
    from tdmixup.data.tasks import TASKS
    from tdmixup.model.classifier import load_tokenizer

    transformers.logging.set_verbosity_error()
    for name in HOOKED:
        _hook(name)
    load_before, start = os.getloadavg(), time.perf_counter()
    spec = TASKS["snli"]
    tokenizer = load_tokenizer(args.model)
    rows = read_nli_jsonl(path, label_names=spec.label_names).select(range(args.train_size))
    data = tokenize(rows, spec, tokenizer, max_length=args.max_length)
    accelerator = training.make_accelerator()
    runs = []
    with tempfile.TemporaryDirectory(prefix="tdmixup-recording-") as tmp:
        if args.warmup_size:
            run_once(
                "none",
                data.subset(data.sample_ids[: args.warmup_size]),
                args,
                tokenizer,
                accelerator,
                Path(tmp),
            )
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                runs.append(
                    {"round": r, **run_once(mode, data, args, tokenizer, accelerator, Path(tmp))}
                )
                run = runs[-1]
                record = ", ".join(f"{s:.2f}" for s in run["recording_seconds_per_epoch"]) or "-"
                print(
                    f"round {r + 1}/{args.rounds} {mode:<10} {run['seconds']:7.2f} s (checkpoints "
                    f"{run['checkpoint_seconds']:.2f} s), recording {record} s/epoch",
                    flush=True,
                )

    def median(mode: str, key: Any) -> float:
        return statistics.median(key(x) for x in runs if x["mode"] == mode)

    total = {m: median(m, lambda x: x["seconds"]) for m in MODES}
    no_ckpt = {m: median(m, lambda x: x["seconds"] - x["checkpoint_seconds"]) for m in MODES}
    summary = {}
    for m in MODES:
        record = [s for x in runs if x["mode"] == m for s in x["recording_seconds_per_epoch"]]
        summary[m] = {
            "median_seconds": total[m],
            "min_seconds": min(x["seconds"] for x in runs if x["mode"] == m),
            "train_samples_per_s": args.train_size * args.epochs / total[m],
            "overhead_pct_vs_none": 100 * (total[m] / total["none"] - 1),
            "median_seconds_without_checkpoints": no_ckpt[m],
            "overhead_pct_vs_none_without_checkpoints": 100 * (no_ckpt[m] / no_ckpt["none"] - 1),
            "median_checkpoint_seconds": median(m, lambda x: x["checkpoint_seconds"]),
            "median_recording_seconds_per_epoch": statistics.median(record) if record else 0.0,
        }
    within = summary["train_pass"]["overhead_pct_vs_none"] <= TARGET_PCT
    result = {
        "what": "wall seconds of tdmixup.training.loop.train per dynamics mode "
        "(median over rounds) and overhead vs none",
        "target": f"train_pass overhead <= {TARGET_PCT} %",
        "train_pass_within_target": within,
        "summary": summary,
        "runs": runs,
        "setup": {
            "train_size": args.train_size,
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "model": args.model,
            "num_hidden_layers": args.num_hidden_layers,
            "seed": args.seed,
            "mean_tokens": float(data.lengths.mean()),
            "warmup_size": args.warmup_size,
        },
        "note": (
            "every run writes one checkpoint per epoch (model + optimizer), "
            "so that cost is in all modes "
            "(timed: *_without_checkpoints subtracts it); "
            "recording seconds = inference pass (epoch_end) "
            "or gathering kept logits (train_pass) + Parquet append"
        ),
        "seconds_total": time.perf_counter() - start,
        "command": shlex.join([sys.executable, *sys.argv]),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "machine": environment_info(world_size=accelerator.num_processes),
    }
    write_json(args.out, result)
    print(
        f"{args.train_size} SNLI pairs × {args.epochs} epoch(s), median of {args.rounds} round(s):"
    )
    for m, s in summary.items():
        print(
            f"  {m:<10} {s['median_seconds']:7.2f} s  {s['train_samples_per_s']:6.1f} samples/s  "
            f"overhead {s['overhead_pct_vs_none']:+5.1f} % "
            f"({s['overhead_pct_vs_none_without_checkpoints']:+5.1f} % without checkpoints)  "
            f"recording {s['median_recording_seconds_per_epoch']:.2f} s/epoch"
        )
    print(f"train_pass within {TARGET_PCT} %: {within}")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
