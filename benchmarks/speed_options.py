"""Speed options for MiniLM training on CPU, measured paired: each option against plain eager
PyTorch on the same batches, step by step, in one process.

For every option two copies of the same freshly built classifier (all-MiniLM-L6-v2 + tdmixup's
[CLS] head) train side by side on the same real SNLI pairs (length-grouped batches of 16, lr 5e-5,
fused AdamW, gradient clipping 1.0 — the study's settings): step *i* of the baseline and step *i*
of the option run back to back, the order alternating every step (ABBA…), and each step reseeds
torch's RNG so that both sides draw the same dropout masks wherever they use torch's generator.
Interleaving at the step level makes the comparison robust to the load of a shared machine: both
sides see the same conditions within a second. Reported per option: the median step time of each
side, the median of the per-step ratios (baseline / option: > 1 = option faster), the first
steps' cost (compilation) separately, and both loss curves with their largest difference.

Options (``--options``):

* ``compile`` — ``encoder.compile(dynamic=True)`` (inductor; dynamic shapes because batches have
  variable lengths). Inductor's dropout uses its own generator, so masks (and losses) differ
  step by step unless ``--fallback-random`` makes it use torch's;
* ``attn_eager`` — the encoder's attention as explicit matmul + softmax instead of SDPA;
* ``bf16_autocast`` — ``torch.autocast("cpu", torch.bfloat16)`` around the forward pass (AMX
  matmuls; fp32 weights, gradients and optimiser) — ``TrainConfig.bf16``. It changes the numerics,
  so it is adopted only if a whole 3-epoch run beside fp32 (``--curve``) keeps the loss curve;
* ``onednn_bf16_matmul`` — ``torch.backends.mkldnn.matmul.fp32_precision = "bf16"`` (fp32
  matmuls on AMX in bf16): changes the numerics too.

And the evaluation pass (the dynamics and test-set predictions): ``torch.no_grad`` (the library)
against ``torch.inference_mode`` and a compiled encoder, alternating whole passes.

``--curve OPTION`` also trains a whole small run (1,500 pairs, 3 epochs) of the option beside fp32,
paired step by step, and scores both models (fp32) on 1,000 official SNLI test pairs: the per-epoch
losses and the test metrics show whether the option keeps the loss curve (``attn_eager``, exact up
to rounding, is the control). Options are adopted by :data:`ADOPT_RULE`.

Results go into ``benchmarks/results/throughput.json`` under the key ``speed_options`` (the rest
of the file, written by ``throughput.py``, is kept; later invocations add to it). Usage::

    export OMP_WAIT_POLICY=PASSIVE
    python benchmarks/speed_options.py          # ~30 min on busy cores
    python benchmarks/speed_options.py --options --eval-rounds 0 --curve bf16_autocast
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "throughput.json"
OPTIONS = ("compile", "attn_eager", "bf16_autocast", "onednn_bf16_matmul")
SAME_NUMERICS = {
    "compile": True,
    "attn_eager": True,
    "bf16_autocast": False,
    "onednn_bf16_matmul": False,
}
ADOPT_AT = 1.15
CURVE_TOLERANCE = 0.005
ADOPT_RULE = (
    f"median paired speed-up >= {ADOPT_AT} and either the same numerics (up to float rounding) "
    "or, for an option that changes them, a whole 3-epoch run beside fp32 (--curve) "
    f"whose per-epoch mean training losses stay within {CURVE_TOLERANCE}"
)


def decide(section: dict[str, Any]) -> list[str]:
    """The options that meet :data:`ADOPT_RULE` in a ``speed_options`` section."""
    adopted = []
    for name, t in section["training"].items():
        if t["speedup_median_of_paired_ratios"] < ADOPT_AT:
            continue
        curve = section["loss_curves"].get(name)
        same_curve = (
            curve is not None
            and max(
                abs(a - b)
                for a, b in zip(
                    curve["mean_loss_per_epoch"]["baseline"],
                    curve["mean_loss_per_epoch"]["option"],
                    strict=True,
                )
            )
            <= CURVE_TOLERANCE
        )
        if SAME_NUMERICS[name] or same_curve:
            adopted.append(name)
    return adopted


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--options", nargs="*", choices=OPTIONS, default=list(OPTIONS), help="options to time"
    )
    p.add_argument(
        "--n", type=int, default=320, help="SNLI training pairs (one epoch = n / 16 steps)."
    )
    p.add_argument(
        "--steps",
        type=int,
        default=60,
        help="Paired steps per option (epochs cycle over the pairs).",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=3,
        help="First steps per side counted as warm-up/compile.",
    )
    p.add_argument(
        "--eval-rounds",
        type=int,
        default=4,
        help="Alternating evaluation passes per variant (0: none).",
    )
    p.add_argument(
        "--curve",
        nargs="*",
        choices=OPTIONS,
        default=[],
        help="options to also train for a whole small run beside the baseline "
        "(loss curve, test metrics)",
    )
    p.add_argument(
        "--curve-n", type=int, default=1500, help="training pairs of the --curve runs (3 epochs)"
    )
    p.add_argument(
        "--curve-test",
        type=int,
        default=1000,
        help="official SNLI test pairs the --curve models are scored on",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--fallback-random",
        action="store_true",
        help="compile: inductor draws dropout masks from torch's generator (same masks as eager)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args()


# --- the two sides ---------------------------------------------------------------------------
class Side:
    """One copy of the classifier with its own optimiser, and how to run a step with it."""

    def __init__(self, model: Any, lr: float, context: Callable[[], Any] = nullcontext) -> None:
        import torch

        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
        self.context = context
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, batch: dict[str, Any], seed: int) -> None:
        """One optimiser step on ``batch`` (timed: forward, backward, clipping, AdamW)."""
        import torch
        import torch.nn.functional as F

        torch.manual_seed(seed)
        start = time.perf_counter()
        with self.context():
            feats = self.model.features(
                batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
            )
            loss = F.cross_entropy(self.model.classify(feats).float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.times.append(time.perf_counter() - start)
        self.losses.append(float(loss.detach()))


@contextmanager
def onednn_bf16() -> Iterator[None]:
    import torch

    old = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old


def make_option(name: str, base: Any, fallback_random: bool) -> tuple[Any, Callable[[], Any]]:
    """A deep copy of ``base`` with option ``name`` applied, and the context its steps run in."""
    import torch

    model = copy.deepcopy(base)
    if name == "compile":
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = fallback_random
        model.encoder.compile(dynamic=True)
        return model, nullcontext
    if name == "attn_eager":
        model.encoder.set_attn_implementation("eager")
        return model, nullcontext
    if name == "bf16_autocast":
        return model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    if name == "onednn_bf16_matmul":
        return model, onednn_bf16
    raise ValueError(f"unknown option {name!r}")


def paired_steps(
    name: str, base: Any, data: Any, steps: int, fallback_random: bool, log_every: int = 10
) -> tuple[Side, Side]:
    """``steps`` paired steps (epochs cycle over ``data``) of the baseline and option ``name``,
    alternating which side goes first; both sides reseed torch's RNG to the same value per step."""
    from tdmixup.data.collate import collate, epoch_batches

    model, context = make_option(name, base, fallback_random)
    baseline, option = Side(copy.deepcopy(base), 5e-5), Side(model, 5e-5, context)
    baseline.model.train()
    option.model.train()
    batches: list[Any] = []
    epoch = 0
    while len(batches) < steps:
        batches += list(
            epoch_batches(data.lengths, batch_size=16, seed=0, epoch=epoch, group_by_length=True)
        )
        epoch += 1
    for i, planned in enumerate(batches[:steps]):
        batch = collate(data, planned.positions, planned.weights)
        first, second = (baseline, option) if i % 2 == 0 else (option, baseline)
        first.step(batch, seed=1000 + i)
        second.step(batch, seed=1000 + i)
        if i < 3 or i % log_every == 0:
            print(
                f"  {name} step {i}: baseline {baseline.times[-1]:.2f} s, "
                f"option {option.times[-1]:.2f} s, "
                f"losses {baseline.losses[-1]:.4f} / {option.losses[-1]:.4f}",
                flush=True,
            )
    return baseline, option


def paired_training(name: str, base: Any, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Timing of ``args.steps`` paired steps of the baseline and option ``name``."""
    load_before = os.getloadavg()
    baseline, option = paired_steps(name, base, data, args.steps, args.fallback_random)
    w = args.warmup_steps
    ratios = [a / b for a, b in zip(baseline.times[w:], option.times[w:], strict=True)]
    diffs = [abs(a - b) for a, b in zip(baseline.losses, option.losses, strict=True)]
    half = len(diffs) // 2
    return {
        "same_numerics_expected": SAME_NUMERICS[name],
        "steps_timed": len(ratios),
        "baseline_step_s_median": statistics.median(baseline.times[w:]),
        "option_step_s_median": statistics.median(option.times[w:]),
        "speedup_median_of_paired_ratios": statistics.median(ratios),
        "speedup_quartiles": statistics.quantiles(ratios, n=4),
        "warmup_s": {
            "baseline": sum(baseline.times[:w]),
            "option": sum(option.times[:w]),
            "option_extra_over_baseline": sum(option.times[:w]) - sum(baseline.times[:w]),
        },
        "loss_abs_diff_max": max(diffs),
        "loss_abs_diff_median": statistics.median(diffs),
        "mean_loss_last_half": {
            "baseline": statistics.fmean(baseline.losses[half:]),
            "option": statistics.fmean(option.losses[half:]),
        },
        "losses": {"baseline": baseline.losses, "option": option.losses},
        "step_s": {"baseline": baseline.times, "option": option.times},
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
    }


def loss_curve(
    name: str, base: Any, data: Any, test: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """A whole small training run (``args.curve_n`` pairs, 3 epochs, as the study's smallest size)
    of the baseline and option ``name``, paired step by step, then both models evaluated in fp32
    on ``test``: do the loss curve and the calibration stay the same?"""
    import numpy as np
    import torch

    from tdmixup.data.collate import collate, inference_batches
    from tdmixup.evaluation.calibration import calibration_report

    steps = 3 * -(-len(data) // 16)
    load_before = os.getloadavg()
    baseline, option = paired_steps(name, base, data, steps, args.fallback_random, log_every=50)
    metrics = {}
    for side_name, side in (("baseline", baseline), ("option", option)):
        side.model.eval()
        parts, labels = [], []
        with torch.no_grad():
            for pos in inference_batches(test.lengths, batch_size=64):
                b = collate(test, pos)
                parts.append(
                    side.model(
                        **{
                            k: b[k]
                            for k in ("input_ids", "attention_mask", "token_type_ids")
                            if k in b
                        }
                    ).logits
                )
                labels.append(b["labels"])
        report = calibration_report(
            logits=torch.cat(parts).numpy(), labels=torch.cat(labels).numpy()
        )
        metrics[side_name] = {k: report[k] for k in ("accuracy", "ece", "nll", "brier")}
    diffs = np.abs(np.array(baseline.losses) - np.array(option.losses))
    return {
        "pairs": len(data),
        "steps": steps,
        "test_pairs": len(test),
        "loss_abs_diff": {
            "max": float(diffs.max()),
            "median": float(np.median(diffs)),
            "last_50_steps_mean": float(diffs[-50:].mean()),
        },
        "mean_loss_per_epoch": {
            "baseline": [
                float(np.mean(baseline.losses[e * steps // 3 : (e + 1) * steps // 3]))
                for e in range(3)
            ],
            "option": [
                float(np.mean(option.losses[e * steps // 3 : (e + 1) * steps // 3]))
                for e in range(3)
            ],
        },
        "test_metrics_fp32_eval": metrics,
        "speedup_median_of_paired_ratios": statistics.median(
            [a / b for a, b in zip(baseline.times[3:], option.times[3:], strict=True)]
        ),
        "losses": {"baseline": baseline.losses, "option": option.losses},
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
    }


def paired_evaluation(base: Any, data: Any, rounds: int) -> dict[str, Any]:
    """Whole prediction passes (batch 64, length-sorted) alternating: ``no_grad`` (the library's
    :func:`~tdmixup.model.predict.predict_logits`), ``inference_mode``, compiled encoder +
    no_grad."""
    import torch

    from tdmixup.data.collate import collate, inference_batches

    compiled = copy.deepcopy(base)
    compiled.encoder.compile(dynamic=True)
    variants: dict[str, tuple[Any, Callable[[], Any]]] = {
        "no_grad": (base, torch.no_grad),
        "inference_mode": (base, torch.inference_mode),
        "compiled_no_grad": (compiled, torch.no_grad),
    }
    batches = [collate(data, pos) for pos in inference_batches(data.lengths, batch_size=64)]
    times: dict[str, list[float]] = {k: [] for k in variants}
    logits: dict[str, Any] = {}
    for r in range(rounds + 1):  # round 0: warm-up (compilation of the eval graph)
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            model, ctx = variants[name]
            model.eval()
            start = time.perf_counter()
            with ctx():
                out = torch.cat(
                    [
                        model(
                            **{
                                k: v
                                for k, v in b.items()
                                if k in ("input_ids", "attention_mask", "token_type_ids")
                            }
                        ).logits
                        for b in batches
                    ]
                )
            times[name].append(time.perf_counter() - start)
            logits[name] = out.clone()
    base_median = statistics.median(times["no_grad"][1:])
    return {
        "pairs": len(data),
        "rounds": rounds,
        "pass_s_median": {k: statistics.median(v[1:]) for k, v in times.items()},
        "first_pass_s": {k: v[0] for k, v in times.items()},
        "speedup_vs_no_grad": {k: base_median / statistics.median(v[1:]) for k, v in times.items()},
        "logits_max_abs_diff_vs_no_grad": {
            k: float((v - logits["no_grad"]).abs().max()) for k, v in logits.items()
        },
    }


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    sys.path.insert(0, str(REPO / "src"))
    from throughput import LABELS, SNLI, load_pairs, machine_info

    from tdmixup.core.config import ModelConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.schema import TaskSpec
    from tdmixup.model.classifier import build_classifier, load_tokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(ModelConfig().name_or_path)
    data = tokenize(
        load_pairs(SNLI, args.n), TaskSpec("snli", "pair", LABELS), tokenizer, max_length=128
    )
    torch.manual_seed(0)
    base = build_classifier(ModelConfig(), "pair", len(LABELS))
    started, load_start = time.strftime("%Y-%m-%dT%H:%M:%S%z"), list(os.getloadavg())
    training = {}
    for name in args.options:
        print(f"{name}:", flush=True)
        training[name] = paired_training(name, base, data, args)
        t = training[name]
        print(
            f"{name}: baseline {t['baseline_step_s_median']:.3f} s/step, "
            f"option {t['option_step_s_median']:.3f} s/step, "
            f"speed-up {t['speedup_median_of_paired_ratios']:.3f}x (quartiles "
            f"{', '.join(f'{q:.2f}' for q in t['speedup_quartiles'])}); warm-up extra "
            f"{t['warmup_s']['option_extra_over_baseline']:.0f} s; "
            f"max |Δloss| {t['loss_abs_diff_max']:.2e}",
            flush=True,
        )
    evaluation = None
    if args.eval_rounds > 0:
        print("evaluation passes:", flush=True)
        evaluation = paired_evaluation(base, data, args.eval_rounds)
        print(
            json.dumps(
                {k: evaluation[k] for k in ("pass_s_median", "first_pass_s", "speedup_vs_no_grad")}
            ),
            flush=True,
        )
    curves = {}
    if args.curve:
        curve_data = tokenize(
            load_pairs(SNLI, args.curve_n),
            TaskSpec("snli", "pair", LABELS),
            tokenizer,
            max_length=128,
        )
        test = tokenize(
            load_pairs(SNLI.with_name("snli_1.0_test.jsonl"), args.curve_test),
            TaskSpec("snli", "pair", LABELS),
            tokenizer,
            max_length=128,
        )
        for name in args.curve:
            print(f"loss curve, {name}:", flush=True)
            curves[name] = loss_curve(name, base, curve_data, test, args)
            c = curves[name]
            print(
                f"{name}: mean loss per epoch {c['mean_loss_per_epoch']}; "
                f"|Δloss| max {c['loss_abs_diff']['max']:.2e}; "
                f"test {c['test_metrics_fp32_eval']}; "
                f"speed-up {c['speedup_median_of_paired_ratios']:.3f}x",
                flush=True,
            )
    invocation = {
        "started": started,
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
        },
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": load_start,
        "load_avg_end": list(os.getloadavg()),
    }
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    old = report.get("speed_options", {})
    section = {
        "benchmark": "speed options against eager fp32 PyTorch, paired step by step "
        "(MiniLM, SNLI, batch 16, lr 5e-5)",
        "machine": machine_info(),
        "adopt_rule": ADOPT_RULE,
        "training": {
            **old.get("training", {}),
            **training,
        },  # later invocations add or replace options
        "evaluation": evaluation if evaluation is not None else old.get("evaluation"),
        "loss_curves": {**old.get("loss_curves", {}), **curves},
        "invocations": [*old.get("invocations", []), invocation],
    }
    section["adopted"] = decide(section)
    report["speed_options"] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)
    print(
        f"adopted ({ADOPT_RULE}): {section['adopted'] or 'none'}; wrote {args.out} [speed_options]"
    )


if __name__ == "__main__":
    main()
