"""Training throughput of tdmixup's loop against Hugging Face ``Trainer``, like for like.

Both sides fine-tune the same model (all-MiniLM-L6-v2 with tdmixup's [CLS] head, built by
:func:`tdmixup.model.classifier.build_classifier`; the Trainer gets it behind a 10-line wrapper that
adds the cross-entropy loss) on the same SNLI pairs, with the same batch size, learning rate,
schedule (linear, no warm-up), gradient clipping (1.0), thread count, dynamic padding
(``DataCollatorWithPadding`` for the Trainer) and one checkpoint per epoch (model + optimizer).
The optimiser is each side's default: fused ``torch.optim.AdamW`` for tdmixup
(:func:`tdmixup.training.optim.adamw`; on CPU it takes the clipping factor into its step and keeps
the word embeddings' gradient in one buffer, :func:`tdmixup.training.optim.clip_gradients` and
:class:`tdmixup.training.optim.KeptEmbeddingGradient`), ``adamw_torch_fused`` for the Trainer.

Sides, each run in its own subprocess (so its peak RSS is its own) and repeated in alternating
order over ``--rounds`` rounds to spread out the noise of a shared machine:

* ``tdmixup`` — :func:`tdmixup.training.loop.train` with length grouping (its default);
* ``tdmixup_ungrouped`` — the same loop without length grouping (what the loop itself costs);
* ``hf_trainer`` — ``Trainer`` with its default random sampler;
* ``hf_trainer_grouped`` — ``Trainer`` with ``train_sampling_strategy="group_by_length"``
  (transformers 5's name for ``group_by_length=True``).

Strategy sides (not in the default set; ``--sides strategy_none strategy_tdmixup
strategy_aum_saliency --out benchmarks/results/throughput_strategies.json``): tdmixup's loop with
length grouping and the strategy ``none`` (one set), ``tdmixup`` or ``aum_saliency`` (two sets: the
first and second half of the pairs, one batch of each per step; for ``aum_saliency`` each row's
recorded saliency comes from random logits — the cost depends on neither the split nor the
values). Their samples/s counts every row forwarded through the encoder (both batches of a step),
so all three sides push the same number of samples per epoch through the model. On a shared machine
compare ``samples_per_cpu_s`` too (samples per CPU-second of the training call): it counts the work,
not the wait for the cores.

Samples/s = training samples / wall time of the training call (tokenisation and model loading
excluded on both sides). On a shared machine the driver waits before each run until at most
``--max-other-runnable`` other tasks are runnable (``/proc/loadavg``; at most ``--max-wait``
seconds), and records per run the load average before and after and ``cpu_share`` = CPU
seconds of the training call / (wall seconds × threads): near 1 means the run had its cores,
well below 1 that it shared them (its samples/s is then a lower bound). On a busy machine run
with ``--omp-wait-policy PASSIVE``: with the default policy, 2-thread runs that share their cores
spend most of their CPU time spinning (measured here: 6.9 vs 22 samples/s for the same run).

Usage::

    python benchmarks/throughput.py                 # 960 pairs, 2 rounds, ~5 min on 2 quiet cores
    python benchmarks/throughput.py --n 1600 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNLI = REPO.parent / "shared" / "data" / "snli" / "snli_1.0_train_first100k.jsonl"
LABELS = ("entailment", "neutral", "contradiction")
SIDES = ("tdmixup", "hf_trainer", "hf_trainer_grouped", "tdmixup_ungrouped")
STRATEGY_SIDES = ("strategy_none", "strategy_tdmixup", "strategy_aum_saliency")
TARGET_RATIO = 1.15
DEFAULT_OUT = REPO / "benchmarks" / "results" / "throughput.json"
OTHER_SECTIONS = ("speed_options",)
"""Keys of throughput.json written by other scripts, kept when this one rewrites the file."""


def load_pairs(path: Path, n: int) -> dict[str, list[Any]]:
    """The first ``n`` gold-labelled SNLI pairs (all of them when ``n`` <= 0) as schema columns
    (sample_id = line number)."""
    cols: dict[str, list[Any]] = {"sample_id": [], "text_a": [], "text_b": [], "label": []}
    with path.open() as fh:
        for line_no, line in enumerate(fh):
            row = json.loads(line)
            if row["gold_label"] not in LABELS:
                continue
            cols["sample_id"].append(line_no)
            cols["text_a"].append(row["sentence1"])
            cols["text_b"].append(row["sentence2"])
            cols["label"].append(LABELS.index(row["gold_label"]))
            if len(cols["label"]) == n:
                return cols
    if n <= 0:
        return cols
    raise SystemExit(f"{path} has only {len(cols['label'])} labelled pairs; asked for {n}")


# --- one side, in a child process -------------------------------------------------------------
def plan_padding(
    sets: list[Any],
    config: Any,
    strategy: str,
    epochs: int,
    batch_size: int,
    *,
    grouping: str | None = None,
) -> tuple[int, int, int]:
    """``(padded tokens, real tokens, rows)`` of the batches the loop plans for ``strategy``
    (:func:`tdmixup.training.planning.plan_epoch`, one process) over ``epochs``; ``grouping``
    overrides the strategy's length grouping (``"random_partners"``: every strategy's plan before
    issue 21)."""
    import numpy as np

    from tdmixup.training.planning import batches_per_set, plan_epoch

    per_set = batches_per_set(strategy, len(sets))
    step_sets = [s for s in sets for _ in range(per_set)]
    rows = padded = real = 0
    for e in range(epochs):
        plan = plan_epoch(
            sets,
            config,
            e,
            1,
            0,
            batch_size,
            per_set=per_set,
            strategy=strategy,  # type: ignore[arg-type]
            grouping=grouping,  # type: ignore[arg-type]
        )
        for step in plan:
            for s, planned in zip(step_sets, step, strict=True):
                lengths = s.lengths[planned.positions]
                rows += len(lengths)
                real += int(lengths.sum())
                padded += len(lengths) * int(np.max(lengths))
    return padded, real, rows


def strategy_sets(data: Any, strategy: str) -> list[Any]:
    """The training sets of a strategy side: one set, or the first and second half of the pairs
    for the strategies that take one batch of each of two sets per step."""
    ids = data.sample_ids
    if strategy in ("tdmixup", "aum_saliency"):
        return [data.subset(ids[: len(ids) // 2]), data.subset(ids[len(ids) // 2 :])]
    return [data]


def run_strategy(args: argparse.Namespace, out_dir: Path, strategy: str) -> dict[str, Any]:
    """tdmixup's loop with ``strategy`` (none: one set; tdmixup / aum_saliency: two halves)."""
    import torch

    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.schema import TaskSpec
    from tdmixup.model.classifier import build_classifier, load_tokenizer
    from tdmixup.strategies.aum_saliency import SaliencyColumn, logit_saliency
    from tdmixup.training.loop import make_accelerator, seed_everything, train

    tokenizer = load_tokenizer(ModelConfig().name_or_path)
    data = tokenize(
        load_pairs(args.snli, args.n),
        TaskSpec("snli", "pair", LABELS),
        tokenizer,
        max_length=args.max_length,
    )
    ids = data.sample_ids
    sets = strategy_sets(data, strategy)
    columns = None
    if strategy == "aum_saliency":
        g = torch.Generator().manual_seed(args.seed)
        recorded = logit_saliency(
            torch.randn(len(ids), len(LABELS), generator=g), torch.as_tensor(data.labels)
        )
        columns = SaliencyColumn(ids, recorded.numpy())
    accelerator = make_accelerator()
    seed_everything(args.seed)
    model = build_classifier(ModelConfig(), "pair", len(LABELS))
    config = TrainConfig(
        learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(
        model,
        sets,
        train_config=config,
        mixup_config=MixupConfig(strategy=strategy),  # type: ignore[arg-type]
        out_dir=out_dir,
        accelerator=accelerator,
        tokenizer=tokenizer,
        batch_columns=columns,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    padded, real, rows = plan_padding(sets, config, strategy, args.epochs, args.batch_size)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "final_train_loss": result.history[-1]["train_loss"],
        "padded_tokens": padded,
        "real_tokens": real,
        "samples": rows,
        "strategy": strategy,
    }


def run_tdmixup(
    args: argparse.Namespace, out_dir: Path, *, group_by_length: bool
) -> dict[str, Any]:
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.schema import TaskSpec
    from tdmixup.model.classifier import build_classifier, load_tokenizer
    from tdmixup.training.loop import make_accelerator, seed_everything, train

    tokenizer = load_tokenizer(ModelConfig().name_or_path)
    data = tokenize(
        load_pairs(args.snli, args.n),
        TaskSpec("snli", "pair", LABELS),
        tokenizer,
        max_length=args.max_length,
    )
    accelerator = make_accelerator()
    seed_everything(args.seed)
    model = build_classifier(ModelConfig(), "pair", len(LABELS))
    config = TrainConfig(
        learning_rate=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        group_by_length=group_by_length,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(
        model,
        [data],
        train_config=config,
        mixup_config=MixupConfig(strategy="none"),
        out_dir=out_dir,
        accelerator=accelerator,
        tokenizer=tokenizer,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    padded, _, _ = plan_padding([data], config, "none", args.epochs, args.batch_size)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "final_train_loss": result.history[-1]["train_loss"],
        "padded_tokens": padded,
        "real_tokens": int(data.lengths.sum()) * args.epochs,
    }


def run_trainer(args: argparse.Namespace, out_dir: Path, *, grouped: bool) -> dict[str, Any]:
    trainer, enc = build_trainer(args, out_dir, grouped=grouped)
    start, cpu_start = time.perf_counter(), time.process_time()
    output = trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "final_train_loss": float(output.training_loss),
        "padded_tokens": trainer_padded_tokens(trainer, args.epochs),
        "real_tokens": sum(len(x) for x in enc["input_ids"]) * args.epochs,
    }


def trainer_padded_tokens(trainer: Any, epochs: int) -> int:
    """Token slots (real + padding) of the Trainer's training batches over ``epochs``."""
    return epochs * sum(int(b["input_ids"].numel()) for b in trainer.get_train_dataloader())


def for_trainer(classifier: Any) -> Any:
    """tdmixup's classifier as a module the Hugging Face ``Trainer`` trains: its forward takes
    the collated batch (``labels`` included) and returns ``{"logits", "loss"}`` (cross-entropy,
    computed in float32 also under bf16)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ForTrainer(nn.Module):
        def __init__(self, classifier: nn.Module) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
            labels: torch.Tensor | None = None,
        ) -> dict[str, Any]:
            logits = self.classifier(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = F.cross_entropy(logits.float(), labels)
            return out

    return ForTrainer(classifier)


def build_trainer(
    args: argparse.Namespace,
    out_dir: Path,
    *,
    grouped: bool,
    cols: dict[str, list[Any]] | None = None,
    epochs: int | None = None,
    **precision: Any,
) -> tuple[Any, Any]:
    """The Hugging Face ``Trainer`` of the ``hf_trainer`` sides and the tokenised pairs.

    ``args``: ``max_length``, ``batch_size``, ``lr``, ``seed`` (and ``snli``, ``n``, ``epochs``
    unless ``cols`` / ``epochs`` are given); ``precision``: ``TrainingArguments`` that differ on a
    GPU (``bf16``, ``tf32``, ``use_cpu``; default: CPU, fp32)."""
    import datasets
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import build_classifier, load_tokenizer

    tokenizer = load_tokenizer(ModelConfig().name_or_path)
    cols = cols if cols is not None else load_pairs(args.snli, args.n)
    enc = tokenizer(cols["text_a"], cols["text_b"], truncation=True, max_length=args.max_length)
    dataset = datasets.Dataset.from_dict({**enc, "label": cols["label"]})
    torch.manual_seed(args.seed)
    model = for_trainer(build_classifier(ModelConfig(), "pair", len(LABELS)))
    training_args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs if epochs is None else epochs,
        learning_rate=args.lr,
        weight_decay=0.0,
        warmup_steps=0,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        logging_strategy="no",
        save_strategy="epoch",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if grouped else "random",
        **({"use_cpu": True} | precision),
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    return trainer, enc


def padding_report(args: argparse.Namespace) -> dict[str, Any]:
    """Padding only, no training (``--padding-only``): the share of padding token slots of each
    side's batches over ``--epochs``, for tdmixup's strategies now (``after``) and with the
    random-partner plan every strategy had before issue 21 (``before``); the Trainer sides from
    their own dataloaders. A few seconds: tokenising and building the Trainer."""
    import transformers

    from tdmixup.core.config import ModelConfig, TrainConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.schema import TaskSpec
    from tdmixup.model.classifier import load_tokenizer

    transformers.logging.set_verbosity_error()
    data = tokenize(
        load_pairs(args.snli, args.n),
        TaskSpec("snli", "pair", LABELS),
        load_tokenizer(ModelConfig().name_or_path),
        max_length=args.max_length,
    )
    config = TrainConfig(batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    sides: dict[str, Any] = {}
    for strategy in ("none", "tdmixup", "random_pairs", "manifold", "mixup", "kong"):
        sets = strategy_sets(data, strategy)
        entry = {}
        for when, grouping in (("before", "random_partners"), ("after", None)):
            padded, real, _ = plan_padding(
                sets, config, strategy, args.epochs, args.batch_size, grouping=grouping
            )
            entry[f"padding_fraction_{when}"] = 1 - real / padded
        sides[f"strategy_{strategy}"] = entry
    with tempfile.TemporaryDirectory(prefix="throughput_padding_") as tmp:
        for side, grouped in (("hf_trainer", False), ("hf_trainer_grouped", True)):
            trainer, enc = build_trainer(args, Path(tmp), grouped=grouped)
            real = sum(len(x) for x in enc["input_ids"]) * args.epochs
            sides[side] = {
                "padding_fraction": 1 - real / trainer_padded_tokens(trainer, args.epochs)
            }
    return sides


def child(args: argparse.Namespace) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix=f"throughput_{args.child}_") as tmp:
        if args.child.startswith("strategy_"):
            result = run_strategy(args, Path(tmp), args.child[len("strategy_") :])
        elif args.child.startswith("tdmixup"):
            result = run_tdmixup(args, Path(tmp), group_by_length=args.child == "tdmixup")
        else:
            result = run_trainer(args, Path(tmp), grouped=args.child == "hf_trainer_grouped")
    samples = result.get("samples", args.n * args.epochs)
    result.update(
        side=args.child,
        samples_per_s=samples / result["seconds"],
        samples_per_cpu_s=samples / result["cpu_seconds"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        torch_threads=torch.get_num_threads(),
        cpu_share=result["cpu_seconds"] / (result["seconds"] * torch.get_num_threads()),
    )
    print("RESULT " + json.dumps(result), flush=True)


# --- the driver ------------------------------------------------------------------------------
def other_runnable(samples: int = 10, interval_s: float = 0.3) -> float:
    """Mean number of runnable tasks besides this one (``/proc/loadavg``, 4th field)."""
    path = Path("/proc/loadavg")
    if not path.exists():
        return 0.0
    counts = []
    for _ in range(samples):
        counts.append(int(path.read_text().split()[3].split("/")[0]) - 1)
        time.sleep(interval_s)
    return sum(counts) / len(counts)


def wait_until_quiet(max_other: float, max_wait_s: float) -> tuple[float, float]:
    """Wait until at most ``max_other`` other tasks are runnable (or ``max_wait_s`` passed);
    returns ``(seconds waited, runnable others when the run started)``."""
    start = time.monotonic()
    while True:
        others = other_runnable()
        if others <= max_other or time.monotonic() - start > max_wait_s:
            return time.monotonic() - start, others
        time.sleep(5)


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--n",
        str(args.n),
        "--max-length",
        str(args.max_length),
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--snli",
        str(args.snli),
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    waited, others = wait_until_quiet(args.max_other_runnable, args.max_wait)
    load_before = os.getloadavg()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(
        load_avg_before=list(load_before),
        load_avg_after=list(os.getloadavg()),
        waited_for_quiet_s=waited,
        other_runnable_at_start=others,
    )
    return result


def machine_info() -> dict[str, Any]:
    from tdmixup.core.runio import environment_info

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {**environment_info(world_size=1, device="cpu"), "cpu_model": cpu}


def summarise(runs: list[dict[str, Any]], sides: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side in sides:
        mine = [r for r in runs if r["side"] == side]
        rates = [r["samples_per_s"] for r in mine]
        summary[side] = {
            "samples_per_s_median": statistics.median(rates),
            "samples_per_s_runs": rates,
            "samples_per_cpu_s_median": statistics.median(r["samples_per_cpu_s"] for r in mine),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in mine),
            "padding_fraction": 1 - mine[0]["real_tokens"] / mine[0]["padded_tokens"],
            "cpu_share": [r["cpu_share"] for r in mine],
            "final_train_loss": [r["final_train_loss"] for r in mine],
        }
    return summary


def contention_note(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How many runs started while other tasks were runnable (``other_runnable_at_start`` > 0.5)."""
    shared = sum(r["other_runnable_at_start"] > 0.5 for r in runs)
    text = (
        "every run started on an otherwise idle machine"
        if shared == 0
        else f"{shared} of {len(runs)} runs started while other work was runnable "
        "(see other_runnable_at_start, load_avg_* and cpu_share per run): "
        "absolute samples/s are lower bounds; "
        "the sides alternated under the same conditions, so the ratios compare like with like"
    )
    return {"runs_started_under_load": shared, "note": text}


def write_padding_report(args: argparse.Namespace) -> None:
    sides = padding_report(args)
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("padding.json")
    report = {
        "benchmark": "padding share of the training batches, tdmixup's plans vs HF Trainer",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k in ("n", "max_length", "batch_size", "epochs", "seed", "snli")
        },
        "machine": machine_info(),
        "sides": sides,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for side, entry in sides.items():
        line = ", ".join(
            f"{k.replace('padding_fraction', 'padding')} {100 * v:.1f} %" for k, v in entry.items()
        )
        print(f"{side:<24} {line}")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=960, help="SNLI training pairs")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sides", nargs="+", choices=SIDES + STRATEGY_SIDES, default=list(SIDES))
    parser.add_argument("--snli", type=Path, default=SNLI)
    parser.add_argument(
        "--max-other-runnable",
        type=float,
        default=0.5,
        help="before each run, wait until at most this many other tasks are runnable ...",
    )
    parser.add_argument(
        "--max-wait", type=float, default=300.0, help="... or this many seconds have passed"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--omp-wait-policy",
        choices=["default", "PASSIVE", "ACTIVE"],
        default="default",
        help="OMP_WAIT_POLICY of the runs; PASSIVE on a shared machine (spinning OpenMP workers "
        "that lose their core stall every step: 3x slower here under load)",
    )
    parser.add_argument(
        "--padding-only",
        action="store_true",
        help="measure only the padding of each side's batches (no training, a few seconds); "
        "writes --out (default benchmarks/results/padding.json)",
    )
    parser.add_argument("--child", choices=SIDES + STRATEGY_SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.snli.exists():
        raise SystemExit(f"SNLI data not found at {args.snli} (see ../shared/data/snli/README.md)")
    if args.padding_only:
        write_padding_report(args)
        return

    started, load_start = time.strftime("%Y-%m-%dT%H:%M:%S%z"), list(os.getloadavg())
    runs = []
    for r in range(args.rounds):
        for side in args.sides if r % 2 == 0 else list(reversed(args.sides)):
            result = run_side(side, args)
            runs.append({"round": r, **result})
            print(
                f"round {r + 1} {side:<20} {result['samples_per_s']:6.1f} samples/s  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB  "
                f"load {result['load_avg_before'][0]:.2f}  "
                f"cpu share {result['cpu_share']:.2f}",
                flush=True,
            )
    summary = summarise(runs, args.sides)
    ratios = {}
    if "tdmixup" in summary:
        ours = summary["tdmixup"]["samples_per_s_median"]
        ratios = {
            f"tdmixup_vs_{s}": ours / summary[s]["samples_per_s_median"]
            for s in summary
            if s != "tdmixup"
        }
    if "strategy_aum_saliency" in summary:
        ours = summary["strategy_aum_saliency"]["samples_per_s_median"]
        per_cpu = summary["strategy_aum_saliency"]["samples_per_cpu_s_median"]
        for other in ("strategy_none", "strategy_tdmixup"):
            if other in summary:
                name = other[len("strategy_") :]
                ratios[f"aum_saliency_vs_{name}"] = ours / summary[other]["samples_per_s_median"]
                ratios[f"aum_saliency_vs_{name}_per_cpu_s"] = (
                    per_cpu / summary[other]["samples_per_cpu_s_median"]
                )
    report = {
        "benchmark": (
            "training samples/s of the strategies none, tdmixup and aum_saliency in tdmixup's loop"
            if set(args.sides) <= set(STRATEGY_SIDES)
            else "training samples/s, tdmixup loop vs Hugging Face Trainer"
        ),
        "started": started,
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("child", "out")
        },
        "machine": machine_info(),
        "load_avg_start": load_start,
        "load_avg_end": list(os.getloadavg()),
        "summary": summary,
        "ratios": ratios,
        "contention": contention_note(runs),
        **(
            {
                "target_ratio_vs_hf_trainer": TARGET_RATIO,
                "meets_target": ratios.get("tdmixup_vs_hf_trainer", 0.0) >= TARGET_RATIO,
            }
            if "hf_trainer" in summary
            else {}
        ),
        "runs": runs,
    }
    if args.out.exists():  # sections other benchmarks keep in this file (speed_options.py)
        previous = json.loads(args.out.read_text())
        report.update({k: previous[k] for k in OTHER_SECTIONS if k in previous})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for side, s in summary.items():
        print(
            f"{side:<20} median {s['samples_per_s_median']:6.1f} samples/s  "
            f"peak RSS {s['peak_rss_mb_max']:6.0f} MB  "
            f"padding {100 * s['padding_fraction']:4.1f} %"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
