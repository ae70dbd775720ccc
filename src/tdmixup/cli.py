"""The ``tdmixup`` command line.

Options are generated from the config dataclasses (:mod:`tdmixup.config`). A command starts from
a profile (``--profile``, default ``cpu-small``; :data:`tdmixup.config.PROFILES`) and each option
given replaces only its own value, so the defaults ``tdmixup <command> --help`` shows are the ones
the command uses.
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
RENAME = {("model", "name_or_path"): "model", ("data", "columns"): "column", ("data", "test_files"): "test-file"}

EXPERIMENT_TABLES = ["table1", "table2", "table3", "steps"]
"""The keys of :data:`tdmixup.experiments.TABLES` (kept here so `--help` needs no torch import)."""


def _option(section: str, name: str) -> str:
    return "--" + RENAME.get((section, name), PREFIX.get(section, "") + name.replace("_", "-"))


def _dest(section: str, name: str) -> str:
    return f"{section}__{name}"


def _add_config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    if "data" in sections:
        _add_profile_option(parser)
    for section in sections:
        cls = SECTIONS[section]
        group = parser.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if section == "mixup" and f.name == "strategy":
                continue  # a positional/explicit option where it applies
            kw = _argparse_kwargs(hints[f.name], f.default)
            group.add_argument(_option(section, f.name), dest=_dest(section, f.name), default=argparse.SUPPRESS,
                               help=f"{f.metadata.get('help', '')} ({_default_text(section, f.name, f.default)})", **kw)


def _default_text(section: str, name: str, default: Any) -> str:
    """``default: X`` as the default profile sets it, plus the other profiles' values where they differ."""
    values = {p: C.PROFILES[p].get(f"{section}.{name}", default) for p in C.PROFILES}
    if len({repr(v) for v in values.values()}) == 1:
        return f"default: {default!r}"

    def show(v: Any) -> str:
        return "all" if v is None else repr(v)  # the profiles set sizes (None = every row) and the lr

    others = [f"--profile {p}: {show(v)}" for p, v in values.items() if p != C.DEFAULT_PROFILE and v != values[C.DEFAULT_PROFILE]]
    return "; ".join([f"default: {show(values[C.DEFAULT_PROFILE])}", *others])


def _add_profile_option(parser: argparse.ArgumentParser) -> None:
    def describe(name: str) -> str:
        values = C.PROFILES[name]
        return f"{name}: " + (", ".join(f"{_option(*k.split('.'))} {v!r}" for k, v in values.items()) or "the paper's values (all data)")

    parser.add_argument("--profile", choices=list(C.PROFILES), default=C.DEFAULT_PROFILE,
                        help=f"Starting values that the options you give override one by one (default: {C.DEFAULT_PROFILE}). "
                             + "; ".join(describe(p) for p in C.PROFILES) + ".")


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
    if tp is int and default is None:
        return {"type": _int_or_all}
    if tp in (int, float, str):
        return {"type": tp}
    return {"type": str}


def _int_or_all(text: str) -> int | None:
    """An optional integer option: a number, or ``all`` / ``none`` for no value (e.g. every row)."""
    if text.strip().lower() in ("all", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=COLUMN, got {text!r}")
    a, b = text.split("=", 1)
    return a, b


def config_from_args(ns: argparse.Namespace, base: C.RunConfig | None = None, **mixup: Any) -> C.RunConfig:
    """Apply the options the user gave on top of ``base`` (default: the ``--profile``'s values);
    each option replaces only its own value."""
    cfg = base or C.profile_config(getattr(ns, "profile", C.DEFAULT_PROFILE))
    parts = {}
    for section, cls in SECTIONS.items():
        values = {f.name: getattr(ns, _dest(section, f.name)) for f in dataclasses.fields(cls)
                  if hasattr(ns, _dest(section, f.name))}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        if section == "data" and "label_names" in values:
            values["label_names"] = label_names_from_cli(values["label_names"])
        if section == "mixup":
            values.update(mixup)
        parts[section] = dataclasses.replace(getattr(cfg, section), **values)
    return C.RunConfig(**parts)


def label_names_from_cli(items: tuple[str, ...]) -> tuple[str, ...]:
    """``--label-names a,b,c`` (or ``--label-names a --label-names b ...``, or both) → ``("a", "b", "c")``.

    >>> label_names_from_cli(("neg, pos",)), label_names_from_cli(("a", "b,c"))
    (('neg', 'pos'), ('a', 'b', 'c'))
    """
    names = tuple(name.strip() for item in items for name in item.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"--label-names {','.join(items)}: expected distinct, non-empty class names in class-index order, "
                         "e.g. --label-names entailment,neutral,contradiction")
    return names


# --- commands -------------------------------------------------------------------------------
def _announce(cfg: C.RunConfig, ns: argparse.Namespace) -> None:
    """One line on stderr with the sizes and lr a command will use (main process only)."""
    if os.environ.get("RANK", "0") != "0":
        return
    d, t = cfg.data, cfg.train
    paper = "" if ns.profile == "paper" else "; --profile paper for the paper's sizes and lr"
    print(f"tdmixup: profile {ns.profile}: task {d.task}, train {'all' if d.train_size is None else f'≤ {d.train_size}'} rows, "
          f"dev {'from --dev-file' if d.dev_file else d.dev_size}, test {'all' if d.test_size is None else f'≤ {d.test_size}'} rows "
          f"per set, lr {t.learning_rate:g}, {t.epochs} epochs{paper}", file=sys.stderr)


def cmd_run(ns: argparse.Namespace) -> int:
    from tdmixup.evaluation import format_metrics
    from tdmixup.pipeline import open_session, run_pipeline

    cfg = config_from_args(ns)
    _announce(cfg, ns)
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

    cfg = config_from_args(ns, strategy=ns.strategy)
    _announce(cfg, ns)
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
    from tdmixup.datamap import assign_regions, save_datamap
    from tdmixup.dynamics import compute_statistics, read_dynamics

    out = Path(ns.output_dir)
    stats = compute_statistics(read_dynamics(ns.dynamics))
    fraction = getattr(ns, "dynamics__fraction", C.DynamicsConfig().fraction)
    overlap = getattr(ns, "dynamics__allow_overlap", False)
    regions = assign_regions(stats, fraction=fraction, allow_overlap=overlap)
    save_datamap(stats, regions, out, title=str(ns.dynamics))
    print(json.dumps({k: int(len(v)) for k, v in regions.items()}), f"→ {out}")
    return 0


def cmd_aum(ns: argparse.Namespace) -> int:
    from tdmixup.aum_training import run_aum
    from tdmixup.datamap import read_region_file
    from tdmixup.pipeline import open_session

    cfg = config_from_args(ns)
    _announce(cfg, ns)
    session = open_session(cfg, ns.output_dir, overwrite=ns.overwrite)
    ids = read_region_file(ns.subset) if ns.subset else session.train.sample_ids
    summary = run_aum(session, Path(ns.output_dir), ids)
    if session.is_main:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_experiment(ns: argparse.Namespace) -> int:
    from tdmixup.experiments import run_experiment

    cfg = config_from_args(ns)
    _announce(cfg, ns)
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

    p = sub.add_parser("experiment", help="Reproduce the paper's Table 1, 2 or 3 (mean ± std over seeds), or the "
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
