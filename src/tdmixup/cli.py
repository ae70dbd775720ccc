"""The ``tdmixup`` command line.

Options are generated from the config dataclasses (:mod:`tdmixup.config`), so the help text
and defaults shown by ``tdmixup <command> --help`` are the ones the library uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from tdmixup import config as C

SECTIONS: dict[str, type] = {
    "data": C.DataConfig, "model": C.ModelConfig, "train": C.TrainConfig,
    "mixup": C.MixupConfig, "dynamics": C.DynamicsConfig, "aum": C.AUMConfig,
}
PREFIX = {"aum": "aum-", "dynamics": "dynamics-"}
RENAME = {("model", "name_or_path"): "model", ("data", "columns"): "column", ("data", "test_files"): "test-file",
          ("dynamics", "stratify_regions"): "stratify-regions"}

EXPERIMENT_TABLES = ["table1", "table2", "table3", "steps"]
"""The keys of :data:`tdmixup.experiments.TABLES` (kept here so `--help` needs no torch import)."""


def _option(section: str, name: str) -> str:
    return "--" + RENAME.get((section, name), PREFIX.get(section, "") + name.replace("_", "-"))


def _dest(section: str, name: str) -> str:
    return f"{section}__{name}"


def _add_config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    for section in sections:
        cls = SECTIONS[section]
        group = parser.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if section == "mixup" and f.name == "strategy":
                continue  # a positional/explicit option where it applies
            kw = _argparse_kwargs(hints[f.name], f.default)
            group.add_argument(_option(section, f.name), dest=_dest(section, f.name), default=argparse.SUPPRESS,
                               help=f"{f.metadata.get('help', '')} (default: {f.default!r})", **kw)


def _argparse_kwargs(tp: Any, default: Any) -> dict[str, Any]:
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    origin = get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"choices": list(get_args(tp))}
    if origin is tuple:
        inner = get_args(tp)[0]
        if get_origin(inner) is tuple:  # column mapping FIELD=COLUMN
            return {"action": "append", "metavar": "FIELD=COLUMN", "type": _pair}
        return {"action": "append", "type": str}
    if tp in (int, float, str):
        return {"type": tp}
    return {"type": str}


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=COLUMN, got {text!r}")
    a, b = text.split("=", 1)
    return a, b


def config_from_args(ns: argparse.Namespace, base: C.RunConfig | None = None, **mixup: Any) -> C.RunConfig:
    """Apply the options the user gave on top of ``base`` (default: the paper's defaults)."""
    cfg = base or C.RunConfig()
    parts = {}
    for section, cls in SECTIONS.items():
        values = {f.name: getattr(ns, _dest(section, f.name)) for f in dataclasses.fields(cls)
                  if hasattr(ns, _dest(section, f.name))}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        if section == "mixup":
            values.update(mixup)
        parts[section] = dataclasses.replace(getattr(cfg, section), **values)
    return C.RunConfig(**parts)


# --- commands -------------------------------------------------------------------------------
DEMO_DEFAULTS = {"data__train_size": 2000, "data__dev_size": 500, "train__learning_rate": 5e-5}
"""The CPU-sized default of ``tdmixup run`` on SNLI: 2,000 training pairs, 375 steps. The paper's
lr 1e-5 is tuned for ~100k steps; in 375 steps it barely moves MiniLM (measured: 37.8 % SNLI test
accuracy after 125 steps on 1,000 pairs vs 54.2 % with 5e-5), so the small default uses 5e-5."""


def cmd_run(ns: argparse.Namespace) -> int:
    from tdmixup.evaluation import format_metrics
    from tdmixup.pipeline import open_session, run_pipeline

    if (getattr(ns, "data__task", "snli") == "snli" and not hasattr(ns, "data__train_file")
            and not hasattr(ns, "data__train_size")):
        for key, value in DEMO_DEFAULTS.items():  # the CPU-sized default, only as a whole
            if not hasattr(ns, key):
                setattr(ns, key, value)
    # the default (tdmixup) leaves mixup.strategy as before, so older run folders keep their config
    cfg = config_from_args(ns, **({"strategy": ns.strategy} if ns.strategy != "tdmixup" else {}))
    session = open_session(cfg, ns.output_dir, overwrite=ns.overwrite, from_stage=ns.from_stage)
    results = run_pipeline(session, from_stage=ns.from_stage, until=ns.until)
    if session.is_main:
        for stage in ("full", "tdmixup"):
            if stage in results and "metrics" in results[stage]:
                print(f"\n== {stage}: {results[stage]['strategy']} on {results[stage]['train_sizes']} samples ==")
                print(format_metrics(results[stage]["metrics"]))
        print(f"\nreport: {Path(ns.output_dir) / 'report.md'}")
    return 0


def cmd_train(ns: argparse.Namespace) -> int:
    from tdmixup.datamap import read_region_file
    from tdmixup.evaluation import format_metrics
    from tdmixup.pipeline import open_session, train_and_evaluate

    if ns.strategy == "aum_saliency":
        raise SystemExit("--strategy aum_saliency needs stage 1's dynamics: use `tdmixup run --strategy aum_saliency`")
    cfg = config_from_args(ns, strategy=ns.strategy)
    session = open_session(cfg, ns.output_dir, overwrite=ns.overwrite)
    sets = [session.train]
    if ns.subset:
        subsets = [session.train.subset(read_region_file(p), source=p) for p in ns.subset]
        if ns.strategy == "tdmixup":
            if len(subsets) != 2:
                raise SystemExit("--strategy tdmixup needs exactly two --subset files: easy, then ambiguous")
            sets = subsets
        else:
            import numpy as np

            union = np.unique(np.concatenate([s.sample_ids for s in subsets]))
            sets = [session.train.subset(union)]
    elif ns.strategy == "tdmixup":
        raise SystemExit("--strategy tdmixup needs --subset EASY.txt --subset AMBIGUOUS.txt (from `tdmixup datamap`)")
    _check_train_args(Path(ns.output_dir), ns, session.is_main)
    summary = train_and_evaluate(session, Path(ns.output_dir), strategy=ns.strategy, train_sets=sets,
                                 dynamics_mode=ns.record_dynamics)
    if session.is_main:
        print(format_metrics(summary["metrics"]))
    return 0


def _check_train_args(out: Path, ns: argparse.Namespace, is_main: bool) -> None:
    """``train``'s own options (strategy, subset files and their contents, dynamics) are kept in
    ``train_args.json``: a finished folder is reused only for the same ones."""
    import hashlib

    from tdmixup.pipeline import PipelineError
    from tdmixup.runio import read_json, write_json

    args = {"strategy": ns.strategy, "record_dynamics": ns.record_dynamics,
            "subsets": [{"path": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in ns.subset or []]}
    path = out / "train_args.json"
    if path.exists():
        if read_json(path) != args:
            raise PipelineError(f"{path}: this folder was trained with other --strategy/--subset/--record-dynamics "
                                "options; use another --output-dir or --overwrite")
    elif is_main:
        write_json(path, args)


def cmd_dynamics(ns: argparse.Namespace) -> int:
    ns.strategy = "none"
    ns.record_dynamics = getattr(ns, "dynamics__mode", "epoch_end")
    ns.subset = None
    return cmd_train(ns)


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from tdmixup.data.collate import tokenize
    from tdmixup.data.tasks import load_task
    from tdmixup.evaluation import evaluate_sets, format_metrics
    from tdmixup.model import load_classifier
    from tdmixup.training import make_accelerator

    cfg = config_from_args(ns)
    accelerator = make_accelerator()
    model, tokenizer = load_classifier(ns.checkpoint)
    model.to(accelerator.device)
    task = load_task(cfg.data, seed=cfg.data.split_seed)

    def tok(ds: Any) -> Any:
        return tokenize(ds, task.spec, tokenizer, max_length=cfg.data.max_seq_length)

    results = evaluate_sets(model, {n: tok(d) for n, d in task.tests.items()}, dev=tok(task.dev),
                            accelerator=accelerator, batch_size=cfg.train.eval_batch_size,
                            out_dir=Path(ns.output_dir) if ns.output_dir else None)
    if accelerator.is_main_process:
        print(format_metrics(results))
    return 0


def cmd_datamap(ns: argparse.Namespace) -> int:
    from tdmixup.classmix import describe_class_mix, log_warnings
    from tdmixup.datamap import assign_regions, save_datamap
    from tdmixup.dynamics import compute_statistics, read_dynamics
    from tdmixup.runio import write_json

    out = Path(ns.output_dir)
    dyn = read_dynamics(ns.dynamics)
    stats = compute_statistics(dyn)
    fraction = getattr(ns, "dynamics__fraction", C.DynamicsConfig().fraction)
    overlap = getattr(ns, "dynamics__allow_overlap", False)
    stratify = getattr(ns, "dynamics__stratify_regions", None) is not False  # default: on
    regions = assign_regions(stats, fraction=fraction, allow_overlap=overlap, stratify=stratify)
    save_datamap(stats, regions, out, title=str(ns.dynamics))
    names = [str(k) for k in range(dyn.num_classes)]
    mix = describe_class_mix(regions, sample_ids=stats.index.to_numpy(), labels=stats["gold"].to_numpy(),
                             label_names=names, reference="train")
    log_warnings(mix["warnings"])
    summary = {"n": int(len(stats)), "regions": {k: int(len(v)) for k, v in regions.items()},
               "stratify_regions": stratify, "class_counts": mix["counts"], "class_warnings": mix["warnings"]}
    write_json(out / "summary.json", summary)
    print(json.dumps(summary), f"→ {out}")
    return 0


def cmd_aum(ns: argparse.Namespace) -> int:
    from tdmixup.aum_training import run_aum
    from tdmixup.datamap import read_region_file
    from tdmixup.pipeline import open_session

    cfg = config_from_args(ns)
    session = open_session(cfg, ns.output_dir, overwrite=ns.overwrite)
    ids = read_region_file(ns.subset) if ns.subset else session.train.sample_ids
    summary = run_aum(session, Path(ns.output_dir), ids)
    if session.is_main:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_experiment(ns: argparse.Namespace) -> int:
    from tdmixup.experiments import run_experiment

    cfg = config_from_args(ns)
    run_experiment(ns.table, cfg, output_dir=Path(ns.output_dir), seeds=ns.seeds)
    return 0


def cmd_env(ns: argparse.Namespace) -> int:
    from tdmixup.runio import environment_info

    print(json.dumps(environment_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdmixup", description="MixUp guided by training dynamics (TDMixUp).")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log every stage and epoch.")
    sub = parser.add_subparsers(dest="command", required=True)
    everything = tuple(SECTIONS)

    p = sub.add_parser("run", help="The whole TDMixUp method end to end (default: CPU-sized SNLI).")
    p.add_argument("--output-dir", default="runs/default")
    p.add_argument("--from-stage", choices=["full", "datamap", "aum", "tdmixup", "report"], default=None)
    p.add_argument("--until", choices=["full", "datamap", "aum", "tdmixup", "report"], default="report")
    p.add_argument("--overwrite", action="store_true", help="Delete the output folder first.")
    p.add_argument("--strategy", choices=["tdmixup", "aum_saliency"], default="tdmixup",
                   help="Stages 3-4: TDMixUp (AUM threshold runs, easy x ambiguous) or aum_saliency (Park & Caragea, "
                        "ACL 2022: median-AUM split of stage 1, saliency-guided partners).")
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("train", help="Fine-tune with one strategy (optionally on subsets), then evaluate.")
    p.add_argument("--strategy", choices=list(get_args(C.Strategy)), default="none")
    p.add_argument("--subset", action="append", help="Region/id file (one sample_id per line); repeatable.")
    p.add_argument("--record-dynamics", choices=["epoch_end", "train_pass"], default=None)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("dynamics", help="Fine-tune while recording training dynamics (Parquet table).")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_dynamics)

    p = sub.add_parser("evaluate", help="Accuracy, ECE, NLL, Brier (+ temperature scaling) of a checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--output-dir", default=None)
    _add_config_options(p, ("data", "train"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("datamap", help="Data map PNG/HTML, statistics and region files from a dynamics table.")
    p.add_argument("--dynamics", required=True, help="dynamics.parquet written by `tdmixup dynamics`.")
    p.add_argument("--output-dir", required=True)
    _add_config_options(p, ("dynamics",))
    p.set_defaults(func=cmd_datamap)

    p = sub.add_parser("aum", help="AUM with threshold samples on a subset: flags likely-mislabeled samples.")
    p.add_argument("--subset", default=None, help="Id file of the subset (default: the whole training set).")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_aum)

    p = sub.add_parser("experiment", help="Reproduce the paper's Table 1, 2 or 3 (mean ± sample std over seeds), or the "
                                          "'steps' ablation (TDMixUp and random pairs with the baseline's step count).")
    p.add_argument("table", choices=EXPERIMENT_TABLES)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--output-dir", default="runs/experiments")
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("env", help="Versions, threads, device and world size (for bug reports).")
    p.set_defaults(func=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if ns.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()  # e.g. the unused pooler / cut layers are expected
    from tdmixup.data.schema import DataError
    from tdmixup.model import ModelLoadError
    from tdmixup.pipeline import PipelineError
    from tdmixup.training import TrainingError

    try:
        return int(ns.func(ns))
    except (DataError, ModelLoadError, PipelineError, TrainingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        _destroy_process_group()


def _destroy_process_group() -> None:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # pragma: no cover - best effort at exit
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
