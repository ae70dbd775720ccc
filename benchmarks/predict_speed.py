"""Prediction speed: ``tdmixup predict``'s Python core against ``transformers.pipeline``.

Both sides classify the same real SNLI test pairs with the same model, batch size, truncation
and torch thread count, in one process, in interleaved rounds (the order alternates each round,
so a shared machine's load falls on both):

* ``tdmixup`` — :meth:`tdmixup.TextClassifier.predict_proba` on a checkpoint: the code path of
  ``tdmixup predict`` (tokenise once, batches sorted by length, calibrated softmax);
* ``pipeline`` — ``pipeline("text-classification", model=<tdmixup export folder>, top_k=None,
  trust_remote_code=True, batch_size=B)`` called on ``{"text", "text_pair"}`` dicts with
  ``truncation=True``: batches in input order, each padded to its longest pair.

Samples/s = pairs / wall time of the call (tokenisation included on both sides, model loading
excluded); samples per CPU-second = pairs / CPU time of the call, the fairer figure when other
jobs share the cores (both ratios are recorded per round). The model is all-MiniLM-L6-v2 (the
offline default) with a tdmixup [CLS] head; its weights do not change the cost. Both sides'
probabilities are compared (largest difference recorded). Each run records the load average
before and after and ``cpu_share`` = CPU seconds / (wall seconds × threads): well below 1 means
the run shared its cores.

Usage::

    python benchmarks/predict_speed.py              # 2,000 pairs, batch 32, 2 threads, 2 rounds
    python benchmarks/predict_speed.py --rounds 3 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO / "src"), str(HERE)]

from tdmixup.core.runio import write_json  # noqa: E402


def snli_pairs(n: int) -> list[tuple[str, str]]:
    """The first ``n`` gold-labelled pairs of the official SNLI test set."""
    from tdmixup.data.readers import read_nli_jsonl
    from tdmixup.data.sources import SNLI_TEST, find_data_file

    path = find_data_file(SNLI_TEST, download=True)
    if path is None:
        raise SystemExit(f"SNLI test file {SNLI_TEST} not found (set TDMIXUP_DATA_DIR)")
    ds = read_nli_jsonl(path).select(range(n))
    return list(zip(ds["text_a"], ds["text_b"], strict=True))


def build_model(folder: Path, max_length: int) -> tuple[Path, Path]:
    """A MiniLM tdmixup checkpoint (random head, T = 1.5) and its ``tdmixup export`` folder."""
    import torch

    from tdmixup.core.config import ModelConfig
    from tdmixup.inference.export import export_classifier
    from tdmixup.model.classifier import (
        CheckpointInfo,
        build_classifier,
        load_tokenizer,
        record_temperature,
        save_classifier,
    )

    torch.manual_seed(0)
    cfg = ModelConfig()
    model = build_classifier(cfg, "pair", 3)
    model.info = CheckpointInfo(
        label_names=("entailment", "neutral", "contradiction"),
        task="snli",
        columns=(("text_a", "sentence1"), ("text_b", "sentence2"), ("label", "gold_label")),
        max_seq_length=max_length,
    )
    ckpt = folder / "stage" / "checkpoint"
    save_classifier(model, load_tokenizer(cfg.name_or_path), ckpt)
    record_temperature(ckpt, 1.5, {"set": "none (benchmark)"})
    return ckpt, export_classifier(ckpt, folder / "exported", card=False)


def _timed(fn: Any, threads: int) -> tuple[Any, dict[str, float]]:
    load_before = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return out, {
        "seconds": wall,
        "cpu_seconds": cpu,
        "cpu_share": cpu / (wall * threads),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="SNLI test pairs (default 2000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        choices=["PASSIVE", "ACTIVE"],
        help="OpenMP threads sleep (PASSIVE, default: fair on shared cores) or spin while idle",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "predict_speed.json"))
    args = parser.parse_args()

    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # before torch loads
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from transformers import pipeline

    from tdmixup.inference import TextClassifier

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    pairs = snli_pairs(args.n)
    dicts = [{"text": a, "text_pair": b} for a, b in pairs]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, exported = build_model(Path(tmp), args.max_length)
        clf = TextClassifier.from_checkpoint(ckpt, device=args.device)
        pipe = pipeline(
            "text-classification",
            model=str(exported),
            top_k=None,
            trust_remote_code=True,
            device=args.device,
            batch_size=args.batch_size,
        )
        names = list(clf.label_names)

        def run_tdmixup() -> np.ndarray:
            return clf.predict_proba(pairs, batch_size=args.batch_size)

        def run_pipeline() -> np.ndarray:
            rows = pipe(dicts, truncation=True, max_length=args.max_length)
            return np.array([[{d["label"]: d["score"] for d in r}[n] for n in names] for r in rows])

        sides = {"tdmixup": run_tdmixup, "pipeline": run_pipeline}
        clf.predict_proba(pairs[:64], batch_size=args.batch_size)  # warm-up, both sides
        pipe(dicts[:64], truncation=True, max_length=args.max_length)
        runs, outputs = [], {}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                probs, timing = _timed(sides[side], args.threads)
                outputs[side] = probs
                runs.append(
                    {
                        "round": r + 1,
                        "side": side,
                        "samples_per_s": len(pairs) / timing["seconds"],
                        "samples_per_cpu_s": len(pairs) / timing["cpu_seconds"],
                    }
                    | timing
                )
                print(
                    f"round {r + 1} {side:>8}: {runs[-1]['samples_per_s']:.1f} samples/s "
                    f"(cpu_share {timing['cpu_share']:.2f}, load {timing['load_before']:.1f})"
                )
    rate = {(x["round"], x["side"]): x["samples_per_s"] for x in runs}
    ratios = [rate[(r, "tdmixup")] / rate[(r, "pipeline")] for r in range(1, args.rounds + 1)]
    work = {(x["round"], x["side"]): x["samples_per_cpu_s"] for x in runs}
    cpu_ratios = [work[(r, "tdmixup")] / work[(r, "pipeline")] for r in range(1, args.rounds + 1)]
    tokens = [len(x) for x in clf.tokenize(pairs, max_length=args.max_length).input_ids]
    from throughput import machine_info

    result = {
        "what": "samples/s of tdmixup predict's core (TextClassifier.predict_proba, a checkpoint) "
        "vs transformers.pipeline on the exported folder; same SNLI test pairs, batch size, "
        "truncation, threads; interleaved rounds",
        "n": len(pairs),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "omp_wait_policy": args.omp_wait_policy,
        "max_length": args.max_length,
        "device": args.device,
        "model": "offline:all-MiniLM-L6-v2 (tdmixup [CLS] head)",
        "mean_tokens_per_pair": float(np.mean(tokens)),
        "runs": runs,
        "ratio_per_round": ratios,
        "ratio_median": statistics.median(ratios),
        "ratio_per_round_by_cpu_time": cpu_ratios,
        "ratio_median_by_cpu_time": statistics.median(cpu_ratios),
        "samples_per_s_median": {
            s: statistics.median(x["samples_per_s"] for x in runs if x["side"] == s) for s in sides
        },
        "max_abs_probability_difference": float(
            np.abs(outputs["tdmixup"] - outputs["pipeline"]).max()
        ),
        "machine": machine_info() | {"device": args.device},
    }
    write_json(args.out, result)
    print(
        f"tdmixup / pipeline per round: {', '.join(f'{x:.2f}' for x in ratios)} (wall), "
        f"{', '.join(f'{x:.2f}' for x in cpu_ratios)} (per CPU-second) → {args.out}"
    )
    print(
        f"largest probability difference: {result['max_abs_probability_difference']:.2e}; "
        f"machine: {result['machine']['cpu_model']}, torch threads {args.threads}"
    )


if __name__ == "__main__":
    main()
