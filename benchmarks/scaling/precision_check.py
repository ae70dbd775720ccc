"""bf16 against fp32 on the same (size, seed): is a study's precision a setting it may mix?

The study's 100 % row is its first stage (``stage1_full``), which every later row of the same
(size, seed) reuses from its run folder. When that folder is gone (a fresh machine) and a later
row runs again, stage 1 is trained again — possibly in another precision (on a CPU without native
bfloat16 the runner trains in fp32). This compares such a retrained stage 1 (``done.json`` in the
run folder, outside git) with the committed ``<size>_full_seed<s>.json`` of the same seed: test
metrics, temperature and the per-epoch training loss, each run's precision and CPU. The result
goes to ``results/precision_check.json`` (merged with earlier checks). Seconds, no model::

    python benchmarks/scaling/precision_check.py --run-dir runs/scaling --size 20000 --seed 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # scaling_summary; throughput

from scaling_summary import precision_name  # noqa: E402

from tdmixup.core.runio import read_json, write_json  # noqa: E402

METRICS = ("accuracy", "ece", "ece_scaled", "nll", "brier")


def describe(bf16: bool, cpu: str | None) -> str:
    return f"{precision_name(bf16)} on {cpu or 'an unrecorded CPU'}"


def compare(
    done: dict[str, Any], committed: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """Both runs' metrics (fractions), temperature and per-epoch loss, and their differences;
    ``config`` is the run folder's ``config.json``."""
    # a run folder lives on the machine that trained it: this machine's CPU where none is recorded
    cpu = config.get("environment", {}).get("cpu_model")
    if cpu is None:
        from throughput import machine_info

        cpu = machine_info()["cpu_model"]
    sets = {}
    for name, theirs in committed["test_sets"].items():
        ours = done["metrics"]["sets"][name]
        sets[name] = {
            m: {"retrained": ours[m], "committed": theirs[m], "difference": ours[m] - theirs[m]}
            for m in METRICS
        }
    loss = (
        [h["train_loss"] for h in done["history"]],
        [h["train_loss"] for h in committed["history"]],
    )
    return {
        "retrained": describe(config["config"]["train"]["bf16"], cpu),
        "committed": describe(committed["settings"]["bf16"], committed["machine"].get("cpu_model")),
        "test_sets": sets,
        "temperature": {
            "retrained": done["metrics"].get("temperature"),
            "committed": committed["temperature"],
        },
        "train_loss_per_epoch": {
            "retrained": loss[0],
            "committed": loss[1],
            "largest_difference": max(abs(a - b) for a, b in zip(*loss, strict=True)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=HERE.parents[1] / "runs" / "scaling")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    folder = args.run_dir / str(args.size) / f"seed_{args.seed}"
    done_path = folder / "stage1_full" / "done.json"
    committed_path = args.results / "runs" / f"{args.size}_full_seed{args.seed}.json"
    for path in (done_path, committed_path):
        if not path.exists():
            raise SystemExit(
                f"{path} not found: both the retrained stage 1 and the committed run are needed"
            )
    result = compare(
        read_json(done_path), read_json(committed_path), read_json(folder / "config.json")
    )
    out = args.results / "precision_check.json"
    checks = read_json(out)["checks"] if out.exists() else {}
    checks[f"{args.size}_seed{args.seed}"] = {
        **result,
        "sources": [str(done_path), str(committed_path)],
    }
    write_json(out, {"what": __doc__.split("\n\n")[0], "checks": checks})
    for name, metrics in result["test_sets"].items():
        cells = ", ".join(
            f"{m} {100 * v['retrained']:.2f} vs {100 * v['committed']:.2f}"
            for m, v in metrics.items()
            if m in ("accuracy", "ece", "ece_scaled")
        )
        print(f"{name}: {cells} (×100; {result['retrained']} vs {result['committed']})")
    print(
        "largest per-epoch train-loss difference "
        f"{result['train_loss_per_epoch']['largest_difference']:.4f}; wrote {out}"
    )


if __name__ == "__main__":
    main()
