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
from tdmixup.layout import (
    STAGES,
    STATISTICS,
    SUMMARY,
    TRAIN_ARGS,
    ExperimentLayout,
    RunLayout,
)

SECTIONS: dict[str, type] = {
    "data": C.DataConfig,
    "model": C.ModelConfig,
    "train": C.TrainConfig,
    "mixup": C.MixupConfig,
    "dynamics": C.DynamicsConfig,
    "aum": C.AUMConfig,
}

EXPERIMENT_TABLES = ["table1", "table2", "table3", "steps"]
"""The keys of :data:`tdmixup.tables.TABLES` (kept here so `--help` needs no torch import)."""


def _option(section: str, name: str) -> str:
    return C.cli_option(section, name)


def _dest(section: str, name: str) -> str:
    return f"{section}__{name}"


def _add_config_options(
    parser: argparse.ArgumentParser,
    sections: tuple[str, ...],
    only: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """One option per field of each config section (``only``: just these fields of a section)."""
    if "data" in sections:
        _add_profile_option(parser)
    for section in sections:
        cls = SECTIONS[section]
        group = parser.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if section == "mixup" and f.name == "strategy":
                continue  # a positional/explicit option where it applies
            if only is not None and section in only and f.name not in only[section]:
                continue
            kw = _argparse_kwargs(hints[f.name], f.default)
            if "choices" not in kw and kw.get("action") is not argparse.BooleanOptionalAction:
                kw.setdefault(
                    "metavar", METAVARS.get((section, f.name), _metavar(_option(section, f.name)))
                )
            group.add_argument(
                _option(section, f.name),
                dest=_dest(section, f.name),
                default=argparse.SUPPRESS,
                help=_help_text(f.metadata.get("help", ""), section, f.name, f.default),
                **kw,
            )


METAVARS = {
    ("data", "test_files"): "NAME=PATH",
    ("data", "label_names"): "NAME",
    ("aum", "subsets"): "REGION",
}
"""Placeholders in ``--help`` where the field name would not read as the option's value."""


def _metavar(option: str) -> str:
    """``--train-file`` → ``TRAIN_FILE``: the placeholder names the option it belongs to."""
    return option.lstrip("-").replace("-", "_").upper()


def _help_text(text: str, section: str, name: str, default: Any) -> str:
    """An option's help with its default said once: the value each ``--profile`` gives it when the
    profiles differ; else the default, unless the text already speaks of it or there is none."""
    values = {p: C.PROFILES[p].get(f"{section}.{name}", default) for p in C.PROFILES}
    if len({repr(v) for v in values.values()}) > 1:
        text = f"{text} ({_default_text(section, name, default)})"
    elif "default" not in text.lower() and default is not None and default != ():
        shown = ", ".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{text} (default: {shown})"
    return text.replace("%", "%%")  # argparse formats help with %


def _default_text(section: str, name: str, default: Any) -> str:
    """``default: X`` as the default profile sets it, plus the other profiles' values where they
    differ."""
    values = {p: C.PROFILES[p].get(f"{section}.{name}", default) for p in C.PROFILES}
    if len({repr(v) for v in values.values()}) == 1:
        return f"default: {default!r}"

    def show(v: Any) -> str:
        return (
            "all" if v is None else repr(v)
        )  # the profiles set sizes (None = every row) and the lr

    others = [
        f"--profile {p}: {show(v)}"
        for p, v in values.items()
        if p != C.DEFAULT_PROFILE and v != values[C.DEFAULT_PROFILE]
    ]
    return "; ".join([f"default: {show(values[C.DEFAULT_PROFILE])}", *others])


def _add_profile_option(parser: argparse.ArgumentParser) -> None:
    def describe(name: str) -> str:
        values = C.PROFILES[name]
        return f"{name}: " + (
            ", ".join(f"{_option(*k.split('.'))} {v!r}" for k, v in values.items())
            or "the paper's values (all data)"
        )

    parser.add_argument(
        "--profile",
        choices=list(C.PROFILES),
        default=C.DEFAULT_PROFILE,
        help="Starting values that the options you give override one by one "
        f"(default: {C.DEFAULT_PROFILE}). " + "; ".join(describe(p) for p in C.PROFILES) + ".",
    )


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


def config_from_args(
    ns: argparse.Namespace, base: C.RunConfig | None = None, **mixup: Any
) -> C.RunConfig:
    """Apply the options the user gave on top of ``base`` (default: the ``--profile``'s values);
    each option replaces only its own value."""
    cfg = base or C.profile_config(getattr(ns, "profile", C.DEFAULT_PROFILE))
    parts = {}
    for section, cls in SECTIONS.items():
        values = {
            f.name: getattr(ns, _dest(section, f.name))
            for f in dataclasses.fields(cls)
            if hasattr(ns, _dest(section, f.name))
        }
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        if section == "data" and "label_names" in values:
            values["label_names"] = label_names_from_cli(values["label_names"])
        if section == "mixup":
            values.update(mixup)
        parts[section] = dataclasses.replace(getattr(cfg, section), **values)
    return C.RunConfig(**parts)


def label_names_from_cli(items: tuple[str, ...]) -> tuple[str, ...]:
    """``--label-names a,b,c`` (or ``--label-names a --label-names b ...``, or both)
    → ``("a", "b", "c")``.

    >>> label_names_from_cli(("neg, pos",)), label_names_from_cli(("a", "b,c"))
    (('neg', 'pos'), ('a', 'b', 'c'))
    """
    names = tuple(name.strip() for item in items for name in item.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(
            f"--label-names {','.join(items)}: "
            "expected distinct, non-empty class names in class-index order, "
            "e.g. --label-names entailment,neutral,contradiction"
        )
    return names


# --- commands -------------------------------------------------------------------------------
def _announce(cfg: C.RunConfig, ns: argparse.Namespace) -> None:
    """One line on stderr with the sizes and lr a command will use (main process only)."""
    if os.environ.get("RANK", "0") != "0":
        return
    d, t = cfg.data, cfg.train
    paper = "" if ns.profile == "paper" else "; --profile paper for the paper's sizes and lr"
    print(
        f"tdmixup: profile {ns.profile}: task {d.task}, "
        f"train {'all' if d.train_size is None else f'≤ {d.train_size}'} rows, "
        f"dev {'from --dev-file' if d.dev_file else d.dev_size}, "
        f"test {'all' if d.test_size is None else f'≤ {d.test_size}'} rows "
        f"per set, lr {t.learning_rate:g}, {t.epochs} epochs{paper}",
        file=sys.stderr,
    )


def cmd_run(ns: argparse.Namespace) -> int:
    from tdmixup.evaluation import format_metrics
    from tdmixup.pipeline import open_session, run_pipeline

    # the default (tdmixup) leaves mixup.strategy as before, so older run folders keep their config
    cfg = config_from_args(ns, **({"strategy": ns.strategy} if ns.strategy != "tdmixup" else {}))
    _announce(cfg, ns)
    session = open_session(
        cfg,
        ns.output_dir,
        overwrite=ns.overwrite,
        from_stage=ns.from_stage,
        keep_training_state=ns.keep_training_state,
    )
    results = run_pipeline(session, from_stage=ns.from_stage, until=ns.until)
    if session.is_main:
        for stage in ("full", "tdmixup"):
            if stage in results and "metrics" in results[stage]:
                print(
                    f"\n== {stage}: {results[stage]['strategy']} "
                    f"on {results[stage]['train_sizes']} samples =="
                )
                print(format_metrics(results[stage]["metrics"]))
        print(f"\nreport: {RunLayout(Path(ns.output_dir)).report}")
    return 0


def cmd_train(ns: argparse.Namespace) -> int:
    from tdmixup.datamap import read_region_file
    from tdmixup.evaluation import format_metrics
    from tdmixup.pipeline import open_session, train_and_evaluate
    from tdmixup.preflight import UsageError

    if ns.strategy == "aum_saliency":
        raise SystemExit(
            "--strategy aum_saliency needs stage 1's dynamics: "
            "use `tdmixup run --strategy aum_saliency`"
        )
    cfg = config_from_args(ns, strategy=ns.strategy)
    if ns.strategy == "tdmixup" and len(ns.subset or []) != 2:
        raise UsageError(
            "--strategy tdmixup needs exactly two --subset files: easy (e.g. aum_easy/kept.txt), "
            "then ambiguous (datamap/regions/ambiguous.txt)"
        )
    _announce(cfg, ns)
    session = open_session(
        cfg, ns.output_dir, overwrite=ns.overwrite, keep_training_state=ns.keep_training_state
    )
    sets = [session.train]
    if ns.subset:
        subsets = [session.train.subset(read_region_file(p), source=p) for p in ns.subset]
        if ns.strategy == "tdmixup":
            sets = subsets
        else:
            import numpy as np

            union = np.unique(np.concatenate([s.sample_ids for s in subsets]))
            sets = [session.train.subset(union)]
    _check_train_args(Path(ns.output_dir), ns, session.is_main)
    summary = train_and_evaluate(
        session,
        Path(ns.output_dir),
        strategy=ns.strategy,
        train_sets=sets,
        dynamics_mode=ns.record_dynamics,
    )
    if session.is_main:
        print(format_metrics(summary["metrics"]))
    return 0


def _check_train_args(out: Path, ns: argparse.Namespace, is_main: bool) -> None:
    """``train``'s own options (strategy, subset files and their contents, dynamics) are kept in
    ``train_args.json``: a finished folder is reused only for the same ones."""
    import hashlib

    from tdmixup.pipeline import PipelineError
    from tdmixup.runio import read_json, write_json

    args = {
        "strategy": ns.strategy,
        "record_dynamics": ns.record_dynamics,
        "subsets": [
            {"path": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
            for p in ns.subset or []
        ],
    }
    path = out / TRAIN_ARGS
    if path.exists():
        if read_json(path) != args:
            raise PipelineError(
                f"{path}: this folder was trained with other --strategy/--subset/--record-dynamics "
                "options; use another --output-dir or --overwrite"
            )
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

    results = evaluate_sets(
        model,
        {n: tok(d) for n, d in task.tests.items()},
        dev=tok(task.dev),
        accelerator=accelerator,
        batch_size=cfg.train.eval_batch_size,
        out_dir=Path(ns.output_dir) if ns.output_dir else None,
    )
    if accelerator.is_main_process:
        print(format_metrics(results))
    return 0


def cmd_datamap(ns: argparse.Namespace) -> int:
    from tdmixup.classmix import describe_class_mix, log_warnings
    from tdmixup.datamap import assign_regions, datamap_summary, datamap_title
    from tdmixup.datamap_plots import save_datamap
    from tdmixup.dynamics import compute_statistics, read_dynamics
    from tdmixup.preflight import UsageError
    from tdmixup.runio import write_json

    out = Path(ns.output_dir)
    try:
        dyn = read_dynamics(ns.dynamics)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(
            f"--dynamics {ns.dynamics}: not a dynamics table written by tdmixup ({err})"
        ) from err
    stats = compute_statistics(dyn)
    cfg = config_from_args(ns)
    stratify = cfg.dynamics.stratify_regions is not False  # default: on
    regions = assign_regions(
        stats,
        fraction=cfg.dynamics.fraction,
        allow_overlap=cfg.dynamics.allow_overlap,
        stratify=stratify,
    )
    texts, names = _texts_and_label_names(ns, cfg, dyn.task)
    save_datamap(
        stats, regions, out, title=ns.title or datamap_title(stats), texts=texts, gold_names=names
    )
    label_names = list(names) if names else [str(k) for k in range(dyn.num_classes)]
    mix = describe_class_mix(
        regions,
        sample_ids=stats.index.to_numpy(),
        labels=stats["gold"].to_numpy(),
        label_names=label_names,
        reference="train",
    )
    log_warnings(mix["warnings"])
    summary = datamap_summary(stats, regions, stratify=stratify, class_mix=mix)
    write_json(out / SUMMARY, summary)
    print(json.dumps(summary), f"→ {out}")
    return 0


def _texts_and_label_names(
    ns: argparse.Namespace, cfg: C.RunConfig, recorded_task: str
) -> tuple[dict[int, str] | None, tuple[str, ...] | None]:
    """Sample texts and label names for a data map: from the data when a data option is given,
    else the label names of the task the dynamics table records (when it is a built-in one)."""
    from tdmixup.data.tasks import TASKS, load_task
    from tdmixup.samples import sample_texts

    if not any(key.startswith("data__") for key in vars(ns)):
        spec = TASKS.get(recorded_task.lower())
        return None, spec.label_names if spec is not None else None
    data = cfg.data  # every training id, whatever sizes the run used; tests are not needed here
    tests = data.test_files or ((f"train={data.train_file}",) if data.train_file else ())
    data = dataclasses.replace(
        data,
        train_size=None,
        test_size=1,
        test_files=tests,
        dev_size=data.dev_size if data.dev_file else 1,
    )
    task = load_task(data, seed=data.split_seed)
    texts = {**sample_texts(task.dev, task.spec.kind), **sample_texts(task.train, task.spec.kind)}
    return texts, task.spec.label_names


def cmd_aum(ns: argparse.Namespace) -> int:
    from tdmixup.aum_training import run_aum
    from tdmixup.datamap import read_region_file
    from tdmixup.pipeline import open_session

    cfg = config_from_args(ns)
    _announce(cfg, ns)
    session = open_session(
        cfg, ns.output_dir, overwrite=ns.overwrite, keep_training_state=ns.keep_training_state
    )
    ids = read_region_file(ns.subset) if ns.subset else session.train.sample_ids
    # datamap/regions/x.txt: the data map's statistics are two folders up
    beside = Path(ns.subset).parent.parent / STATISTICS if ns.subset else None
    summary = run_aum(
        session, Path(ns.output_dir), ids, statistics=beside if beside and beside.exists() else None
    )
    if session.is_main:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_experiment(ns: argparse.Namespace) -> int:
    from tdmixup.experiments import run_experiment
    from tdmixup.preflight import UsageError
    from tdmixup.tables import select_rows

    if ns.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {ns.seeds}")
    cfg = config_from_args(ns)
    if ns.tables_only:
        from tdmixup.experiments import write_finished_table

        write_finished_table(
            ns.table, output_dir=Path(ns.output_dir), task=cfg.data.task, seeds=ns.seeds
        )
        print(f"{ExperimentLayout(Path(ns.output_dir)).table_md(ns.table)} (finished rows only)")
        return 0
    _announce(cfg, ns)
    only = (
        [name.strip() for part in ns.rows for name in part.split(",") if name.strip()]
        if ns.rows
        else None
    )
    try:
        select_rows(ns.table, only)
    except ValueError as err:
        raise UsageError(str(err)) from err
    run_experiment(
        ns.table,
        cfg,
        output_dir=Path(ns.output_dir),
        seeds=ns.seeds,
        keep_training_state=ns.keep_training_state,
        only_rows=only,
    )
    return 0


def cmd_env(ns: argparse.Namespace) -> int:
    from tdmixup.runio import environment_info

    print(json.dumps(environment_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Log every stage and epoch; show the traceback of an error.",
    )
    parser = argparse.ArgumentParser(
        prog="tdmixup", description="MixUp guided by training dynamics (TDMixUp)."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Log every stage and epoch; show the traceback of an error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    everything = tuple(SECTIONS)
    training = ("data", "model", "train")
    stages = list(STAGES)
    keep = (
        "Keep each finished stage's optimizer, scheduler and RNG state "
        "(checkpoint/training_state.pt, about twice the model's size); "
        "by default only an unfinished stage keeps it, to resume exactly."
    )

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    p = command("run", "The whole TDMixUp method end to end (default: CPU-sized SNLI).")
    p.add_argument(
        "--output-dir",
        default="runs/default",
        metavar="OUTPUT_DIR",
        help="Run folder: config.json, one folder per stage, report.md (default: runs/default).",
    )
    p.add_argument(
        "--from-stage",
        choices=stages,
        default=None,
        help="Re-run this stage and all later ones (their folders are deleted first); "
        "earlier finished stages are reused.",
    )
    p.add_argument(
        "--until",
        choices=stages,
        default="report",
        help="Stop after this stage (default: report, i.e. all).",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete the output folder first and start afresh."
    )
    p.add_argument("--keep-training-state", action="store_true", help=keep)
    p.add_argument(
        "--strategy",
        choices=["tdmixup", "aum_saliency"],
        default="tdmixup",
        help="Stages 3-4: TDMixUp (AUM threshold runs, easy x ambiguous) "
        "or aum_saliency (Park & Caragea, ACL 2022: median-AUM split of stage 1, "
        "saliency-guided partners).",
    )
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_run)

    p = command("train", "Fine-tune with one strategy (optionally on subsets), then evaluate.")
    p.add_argument(
        "--strategy",
        choices=list(get_args(C.Strategy)),
        default="none",
        help="Training strategy; none is plain fine-tuning, "
        "tdmixup needs two --subset files (default: none).",
    )
    p.add_argument(
        "--subset",
        action="append",
        metavar="SUBSET",
        help="Id file (one sample_id per line, e.g. datamap/regions/easy.txt); "
        "repeatable: the union is trained on, or with --strategy tdmixup the easy set, "
        "then the ambiguous set.",
    )
    p.add_argument(
        "--record-dynamics",
        choices=["epoch_end", "train_pass"],
        default=None,
        help="Also record training dynamics (dynamics.parquet) in this mode.",
    )
    p.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for config.json, checkpoint/, metrics.json and done.json.",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete the output folder first and start afresh."
    )
    p.add_argument("--keep-training-state", action="store_true", help=keep)
    _add_config_options(p, (*training, "mixup"))
    p.set_defaults(func=cmd_train)

    p = command("dynamics", "Fine-tune while recording training dynamics (Parquet table).")
    p.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for dynamics.parquet, checkpoint/, metrics.json and config.json.",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete the output folder first and start afresh."
    )
    p.add_argument("--keep-training-state", action="store_true", help=keep)
    _add_config_options(p, (*training, "dynamics"), only={"dynamics": ("mode",)})
    p.set_defaults(func=cmd_dynamics)

    p = command("evaluate", "Accuracy, ECE, NLL, Brier (+ temperature scaling) of a checkpoint.")
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CHECKPOINT",
        help="A checkpoint folder written by train, dynamics or run "
        "(e.g. runs/x/stage1_full/checkpoint).",
    )
    p.add_argument(
        "--output-dir",
        default=None,
        metavar="OUTPUT_DIR",
        help="Also write metrics.json and reliability diagrams to this folder "
        "(default: print only).",
    )
    _add_config_options(p, ("data", "train"), only={"train": ("eval_batch_size",)})
    p.set_defaults(func=cmd_evaluate)

    p = command(
        "datamap",
        "Data map PNG/HTML, statistics and region files from a dynamics table. Give the data "
        "options (e.g. --task snli, or --train-file with --column) to show texts and label names.",
    )
    p.add_argument(
        "--dynamics",
        required=True,
        metavar="DYNAMICS",
        help="dynamics.parquet written by `tdmixup dynamics`.",
    )
    p.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for datamap.png, datamap.html, statistics.parquet and regions/.",
    )
    p.add_argument(
        "--title",
        default=None,
        metavar="TITLE",
        help="Plot title (default: task, samples, epochs and mode of the dynamics table).",
    )
    _add_config_options(
        p,
        ("dynamics", "data"),
        only={"dynamics": ("fraction", "allow_overlap", "stratify_regions")},
    )
    p.set_defaults(func=cmd_datamap)

    p = command("aum", "AUM with threshold samples on a subset: flags likely-mislabeled samples.")
    p.add_argument(
        "--subset",
        default=None,
        metavar="SUBSET",
        help="Id file of the subset, e.g. datamap/regions/easy.txt "
        "(default: the whole training set); the data map's statistics.parquet "
        "beside regions/ adds confidence and variability to the CSV files.",
    )
    p.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for aum.parquet, kept.txt/.csv, flagged.csv and summary.json.",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete the output folder first and start afresh."
    )
    p.add_argument("--keep-training-state", action="store_true", help=keep)
    _add_config_options(
        p,
        (*training, "aum"),
        only={
            "aum": (
                "percentile",
                "procedure",
                "epochs",
                "dynamics_mode",
                "threshold_balance",
                "skip_epochs",
            )
        },
    )
    p.set_defaults(func=cmd_aum)

    p = command(
        "experiment",
        "Reproduce the paper's Table 1, 2 or 3 (mean ± sample std over seeds), "
        "or the 'steps' ablation (TDMixUp and random pairs with the baseline's step count).",
    )
    p.add_argument("table", choices=EXPERIMENT_TABLES, help="Which table to reproduce.")
    p.add_argument(
        "--seeds", type=int, default=3, metavar="SEEDS", help="Run seeds 1..SEEDS (default: 3)."
    )
    p.add_argument(
        "--output-dir",
        default="runs/experiments",
        metavar="OUTPUT_DIR",
        help="Folder for one run folder per seed and the table files (default: runs/experiments).",
    )
    p.add_argument("--keep-training-state", action="store_true", help=keep)
    p.add_argument(
        "--rows",
        action="append",
        metavar="ROWS",
        help="Run only these rows of the table (keys as in table.json, e.g. full_ls,aum_saliency); "
        "repeatable or comma-separated (default: every row).",
    )
    p.add_argument(
        "--tables-only",
        action="store_true",
        help="Train nothing: write the table from the rows and seeds already finished "
        "in --output-dir (e.g. while a long run is going); unfinished rows show 'not run yet'.",
    )
    _add_config_options(p, everything)
    p.set_defaults(func=cmd_experiment)

    p = command("env", "Versions, threads, device and world size (for bug reports).")
    p.set_defaults(func=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``tdmixup`` entry point; returns the exit status (see
    :func:`tdmixup.preflight.run_command`)."""
    from tdmixup.preflight import run_command

    parser = build_parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if ns.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    logging.getLogger("tdmixup.training").setLevel(
        logging.INFO
    )  # one line per epoch, also without -v
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return run_command(ns.func, ns)
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
