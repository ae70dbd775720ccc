"""Part (b): MiniLM on 100k SNLI pairs, one epoch, bf16 + TF32 — tdmixup's loop against Hugging
Face ``Trainer`` on the same GPU, in one run.

Same model (all-MiniLM-L6-v2 with tdmixup's [CLS] head), pairs, batch size (32), learning rate,
linear schedule, clipping (1.0), dynamic padding, one checkpoint at the epoch's end. tdmixup:
``TrainConfig(bf16=True)`` (TF32 on through ``make_accelerator``), length-grouped batches (its
default). Trainer: ``bf16=True, tf32=True``, with ``group_by_length`` and with its random
sampler. Each side runs in its own subprocess; samples/s = training samples / wall time of the
training call (tokenisation and loading excluded); the JSON is rewritten after each side, so a
run cut off keeps the sides it finished.

Run: ``python benchmarks/gpu/throughput_gpu.py`` (``--dry-run``: 16 pairs on this machine, fp32
on a CPU, nothing written under results/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LABELS, RESULTS, load_pairs, machine, write_json  # noqa: E402
from throughput import build_trainer  # noqa: E402

SIDES = ("tdmixup", "hf_trainer_grouped", "hf_trainer")


def run_tdmixup(args: argparse.Namespace, out_dir: Path, cuda: bool) -> dict[str, Any]:
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.schema import TaskSpec
    from tdmixup.model.classifier import build_classifier, load_tokenizer
    from tdmixup.training.loop import make_accelerator, seed_everything, train

    tokenizer = load_tokenizer(ModelConfig().name_or_path)
    data = tokenize(
        load_pairs(args.n), TaskSpec("snli", "pair", LABELS), tokenizer, max_length=args.max_length
    )
    accelerator = make_accelerator()
    seed_everything(args.seed)
    model = build_classifier(ModelConfig(), "pair", len(LABELS))
    config = TrainConfig(
        learning_rate=args.lr,
        batch_size=args.batch_size,
        epochs=1,
        seed=args.seed,
        bf16=cuda,
        eval_batch_size=256,
    )
    _sync(cuda)
    start = time.perf_counter()
    result = train(
        model,
        [data],
        train_config=config,
        mixup_config=MixupConfig(strategy="none"),
        out_dir=out_dir,
        accelerator=accelerator,
        tokenizer=tokenizer,
    )
    _sync(cuda)
    return {
        "seconds": time.perf_counter() - start,
        "samples": len(data),
        "final_train_loss": result.history[-1]["train_loss"],
    }


def run_trainer(
    args: argparse.Namespace, out_dir: Path, cuda: bool, grouped: bool
) -> dict[str, Any]:
    """One epoch of ``benchmarks/throughput.py``'s Trainer side, in bf16 + TF32 on a GPU."""
    trainer, enc = build_trainer(
        args,
        out_dir,
        grouped=grouped,
        cols=load_pairs(args.n),
        epochs=1,
        bf16=cuda,
        tf32=cuda if cuda else None,
        use_cpu=not cuda,
    )
    _sync(cuda)
    start = time.perf_counter()
    output = trainer.train()
    _sync(cuda)
    return {
        "seconds": time.perf_counter() - start,
        "samples": len(enc["input_ids"]),
        "final_train_loss": float(output.training_loss),
    }


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def child(args: argparse.Namespace) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        if args.child == "tdmixup":
            result = run_tdmixup(args, Path(tmp), cuda)
        else:
            result = run_trainer(args, Path(tmp), cuda, grouped=args.child == "hf_trainer_grouped")
    result["samples_per_s"] = result["samples"] / result["seconds"]
    result["precision"] = "bf16 + tf32" if cuda else "fp32 (CPU dry run)"
    if cuda:
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=0, help="SNLI pairs (0: all 100k)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput_gpu.json")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.dry_run:
        args.n = args.n or 16
    report: dict[str, Any] = {
        "part": "b: MiniLM 1 epoch, tdmixup vs HF Trainer",
        "config": {k: str(v) for k, v in vars(args).items() if k != "child"},
        "machine": machine(),
        "sides": {},
    }
    for side in args.sides:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--n",
            str(args.n),
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(args.max_length),
            "--lr",
            str(args.lr),
            "--seed",
            str(args.seed),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            report["sides"][side] = {"error": proc.stderr[-1500:], "returncode": proc.returncode}
        else:
            report["sides"][side] = {
                **json.loads(line[7:]),
                "process_wall_s": time.perf_counter() - start,
            }
        print(side, report["sides"][side].get("samples_per_s", report["sides"][side]), flush=True)
        ours = report["sides"].get("tdmixup", {}).get("samples_per_s")
        report["ratios"] = {
            f"tdmixup_vs_{s}": ours / r["samples_per_s"]
            for s, r in report["sides"].items()
            if ours and s != "tdmixup" and "samples_per_s" in r
        }
        if not args.dry_run:
            write_json(args.out, report)
    print(json.dumps(report.get("ratios", {})), flush=True)


if __name__ == "__main__":
    main()
