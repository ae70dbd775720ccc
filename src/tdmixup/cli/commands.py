"""The ``tdmixup`` command line: one ``cmd_*`` function per command, :func:`build_parser` and
:func:`main`.

Each command's options, and the options generated from the config dataclasses
(:mod:`tdmixup.core.config`), are in :mod:`tdmixup.cli.options`. A command starts from a profile
(``--profile``, default ``cpu-small``; :data:`tdmixup.core.config.PROFILES`) and each option given
replaces only its own value, so the defaults ``tdmixup <command> --help`` shows are the ones the
command uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tdmixup import __version__
from tdmixup.cli.config_file import (
    ConfigFileError,
    add_config_file_option,
    parse_args_with_config_file,
)
from tdmixup.cli.inference_commands import (
    add_export_options,
    add_predict_options,
    cmd_export,
    cmd_predict,
)
from tdmixup.cli.options import (
    EXPERIMENT_TABLES,
    add_aum_options,
    add_datamap_options,
    add_dynamics_options,
    add_evaluate_options,
    add_experiment_options,
    add_run_options,
    add_train_options,
    config_from_args,
)
from tdmixup.cli.summaries import plural
from tdmixup.core import config as C
from tdmixup.core.layout import STATISTICS, SUMMARY, TRAIN_ARGS, ExperimentLayout, RunLayout

__all__ = ["EXPERIMENT_TABLES", "build_parser", "config_from_args", "main"]


# --- commands -------------------------------------------------------------------------------
def _announce(
    cfg: C.RunConfig, ns: argparse.Namespace, *, tests: bool = True, epochs: str | None = None
) -> None:
    """One line on stderr with the sizes, lr and epochs a command will use (main process only);
    ``tests``: whether it evaluates test sets; ``epochs``: what it trains, when not
    ``train.epochs`` for one model."""
    if os.environ.get("RANK", "0") != "0":
        return
    d, t = cfg.data, cfg.train
    paper = "" if ns.profile == "paper" else "; --profile paper for the paper's sizes and lr"
    test = f"test {'all' if d.test_size is None else f'≤ {d.test_size}'} rows per set, "
    print(
        f"tdmixup: profile {ns.profile}: task {d.task}, "
        f"train {'all' if d.train_size is None else f'≤ {d.train_size}'} rows, "
        f"dev {'from --dev-file' if d.dev_file else d.dev_size}, {test if tests else ''}"
        f"lr {t.learning_rate:g}, {epochs or plural(t.epochs, 'epoch')}{paper}",
        file=sys.stderr,
    )


def _aum_epochs(cfg: C.RunConfig) -> str:
    """What an AUM stage trains: its epochs per threshold-sample pass and how many passes."""
    each = plural(cfg.aum.epochs or cfg.train.epochs, "epoch")
    return (
        f"{each} in each of 2 AUM passes"
        if cfg.aum.procedure == "two_pass"
        else f"{each} in 1 AUM pass"
    )


def cmd_run(ns: argparse.Namespace) -> int:
    from tdmixup.evaluation.sets import format_metrics
    from tdmixup.run.pipeline import open_session, run_pipeline

    # the default (tdmixup) leaves mixup.strategy as before, so older run folders keep their config
    cfg = config_from_args(ns, **({"strategy": ns.strategy} if ns.strategy != "tdmixup" else {}))
    aum = cfg.aum.epochs
    _announce(
        cfg,
        ns,
        epochs=None
        if aum in (None, cfg.train.epochs)
        else f"{plural(cfg.train.epochs, 'epoch')} ({_aum_epochs(cfg)})",
    )
    session = open_session(
        cfg,
        ns.output_dir,
        overwrite=ns.overwrite,
        from_stage=ns.from_stage,
        keep_training_state=ns.keep_training_state,
        report_to=ns.report_to,
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
    from tdmixup.cli.preflight import UsageError
    from tdmixup.dynamics.datamap import read_region_file
    from tdmixup.evaluation.sets import format_metrics
    from tdmixup.run.pipeline import open_session, train_and_evaluate

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
    _announce(cfg, ns, tests=ns.command != "dynamics")
    session = open_session(
        cfg,
        ns.output_dir,
        overwrite=ns.overwrite,
        keep_training_state=ns.keep_training_state,
        require_tests=ns.command != "dynamics",  # dynamics evaluates on dev only
        has_from_stage=False,
        report_to=ns.report_to,
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
        if ns.command == "dynamics":
            from tdmixup.cli.summaries import data_options, dynamics_lines

            print("\n".join(dynamics_lines(summary, Path(ns.output_dir), data_options(cfg.data))))
    return 0


def _check_train_args(out: Path, ns: argparse.Namespace, is_main: bool) -> None:
    """``train``'s own options (strategy, subset files and their contents, dynamics) are kept in
    ``train_args.json``: a folder is reused only for the same ones once it has trained."""
    import hashlib

    from tdmixup.core.runio import read_json, write_json
    from tdmixup.run.pipeline import PipelineError
    from tdmixup.run.session import trained_nothing

    args = {
        "strategy": ns.strategy,
        "record_dynamics": ns.record_dynamics,
        "subsets": [
            {"path": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
            for p in ns.subset or []
        ],
    }
    path = out / TRAIN_ARGS
    if path.exists() and not trained_nothing(out):
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
    from tdmixup.evaluation.sets import evaluate_sets, format_metrics
    from tdmixup.model.classifier import check_label_names, load_classifier
    from tdmixup.training.loop import make_accelerator
    from tdmixup.training.optim import precision_of

    cfg = config_from_args(ns)
    accelerator = make_accelerator(mixed_precision="fp16" if cfg.train.fp16 else "no")
    model, tokenizer = load_classifier(ns.checkpoint)
    check_label_names(cfg.data.label_names, model.info, f"--checkpoint {ns.checkpoint}")
    if not cfg.data.label_names and model.kind != "multiple_choice":  # the checkpoint's names
        data = dataclasses.replace(cfg.data, label_names=model.info.label_names)
        cfg = dataclasses.replace(cfg, data=data)
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
        precision=precision_of(cfg.train),
    )
    if accelerator.is_main_process:
        print(format_metrics(results))
    return 0


def cmd_datamap(ns: argparse.Namespace) -> int:
    from tdmixup.cli.summaries import data_options, datamap_lines
    from tdmixup.core.classmix import describe_class_mix, log_warnings
    from tdmixup.core.runio import write_json
    from tdmixup.data.tasks import TASKS, train_file_rows
    from tdmixup.dynamics.datamap import assign_regions, datamap_summary, datamap_title
    from tdmixup.dynamics.datamap_plots import save_datamap
    from tdmixup.dynamics.table import compute_statistics
    from tdmixup.run.pipeline import datamap_suspects, user_mapping

    out = Path(ns.output_dir)
    dyn = _dynamics_option(ns)
    stats = compute_statistics(dyn)
    cfg = config_from_args(ns)
    stratify = cfg.dynamics.stratify_regions is not False  # default: on
    regions = assign_regions(
        stats,
        fraction=cfg.dynamics.fraction,
        allow_overlap=cfg.dynamics.allow_overlap,
        stratify=stratify,
    )
    texts, names, source = _texts_and_label_names(ns, cfg, dyn)
    if source is not None:
        data: str | None = data_options(cfg.data)
    else:  # the table alone: its task's name, when the task is built in
        data = f"--task {dyn.task}" if dyn.task.lower() in TASKS else None
    save_datamap(
        stats,
        regions,
        out,
        title=ns.title or datamap_title(stats),
        texts=texts,
        gold_names=names,
        source=source,
        mapping=user_mapping(cfg.data, cfg.data.task) if source is not None else None,
        rank_by=cfg.dynamics.rank_by,
        flag_fraction=cfg.dynamics.flag_fraction,
        stratified=stratify,
        own_rows=train_file_rows(cfg.data) if source is not None else None,
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
    suspects = datamap_suspects(
        stats, label_names, cfg.dynamics.rank_by, cfg.dynamics.flag_fraction
    )
    summary = datamap_summary(stats, regions, stratify=stratify, class_mix=mix, suspects=suspects)
    write_json(out / SUMMARY, summary)
    print("\n".join(datamap_lines(summary, out, fraction=cfg.dynamics.fraction, data=data)))
    return 0


def _dynamics_option(ns: argparse.Namespace) -> Any:
    """The table ``--dynamics`` names; a usage error when it is not one tdmixup wrote."""
    from tdmixup.cli.preflight import UsageError
    from tdmixup.dynamics.table import read_dynamics

    try:
        return read_dynamics(ns.dynamics)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(
            f"--dynamics {ns.dynamics}: not a dynamics table written by tdmixup ({err})"
        ) from err


def _texts_and_label_names(
    ns: argparse.Namespace, cfg: C.RunConfig, dyn: Any
) -> tuple[dict[int, str] | None, tuple[str, ...] | None, Any]:
    """Sample texts, label names and the source rows (for ``suspects.csv``) of a data map: from
    the data when a data option is given, checked against the table's fingerprint (a file that
    is not the one the dynamics were recorded on is refused; a custom task without
    ``--label-names`` takes the table's class names and order); else the label names the table
    records, or those of its built-in task."""
    from tdmixup.core.samples import sample_texts
    from tdmixup.data.tasks import TASKS, load_task

    if not any(key.startswith("data__") for key in vars(ns)):
        spec = TASKS.get(dyn.task.lower())
        names = dyn.label_names or (spec.label_names if spec is not None else None)
        return None, names or None, None
    data = cfg.data  # every training id, whatever sizes the run used; tests are not needed here
    data = dataclasses.replace(
        data, train_size=None, dev_size=data.dev_size if data.dev_file else 1
    )
    if data.task.lower() == "custom" and not data.label_names and dyn.label_names:
        data = dataclasses.replace(data, label_names=tuple(dyn.label_names))  # the table's order
    task = load_task(data, seed=data.split_seed, require_tests=False)
    import numpy as np

    # the dev row(s) held out from the end of the training file were trained on by the run
    dev_only = ~np.isin(np.asarray(task.dev["sample_id"]), np.asarray(task.train["sample_id"]))
    rows = task.train
    if dev_only.any() and not data.dev_file:
        from datasets import concatenate_datasets

        rows = concatenate_datasets([task.train, task.dev.select(np.flatnonzero(dev_only))])
    what = f"--train-file {data.train_file}" if data.train_file else f"task {data.task}"
    dyn.check_data(
        rows, data=what, table=f"--dynamics {ns.dynamics}", label_names=task.spec.label_names
    )
    texts = sample_texts(rows, task.spec.kind)
    return texts, task.spec.label_names, rows


def cmd_aum(ns: argparse.Namespace) -> int:
    from tdmixup.dynamics.datamap import read_region_file
    from tdmixup.run.aum_training import run_aum
    from tdmixup.run.pipeline import open_session

    cfg = config_from_args(ns)
    _announce(cfg, ns, tests=False, epochs=_aum_epochs(cfg))
    session = open_session(
        cfg,
        ns.output_dir,
        overwrite=ns.overwrite,
        keep_training_state=ns.keep_training_state,
        require_tests=False,  # AUM evaluates no test set
        has_from_stage=False,
        report_to=ns.report_to,
    )
    ids = read_region_file(ns.subset) if ns.subset else session.train.sample_ids
    # datamap/regions/x.txt: the data map's statistics are two folders up
    beside = Path(ns.subset).parent.parent / STATISTICS if ns.subset else None
    summary = run_aum(
        session, Path(ns.output_dir), ids, statistics=beside if beside and beside.exists() else None
    )
    if session.is_main:
        from tdmixup.cli.summaries import aum_lines, data_options

        out, data = Path(ns.output_dir), data_options(cfg.data)
        print("\n".join(aum_lines(summary, out, subset=ns.subset, data=data)))
    return 0


def cmd_experiment(ns: argparse.Namespace) -> int:
    from tdmixup.cli.preflight import UsageError
    from tdmixup.evaluation.tables import select_rows
    from tdmixup.run.experiments import run_experiment

    if ns.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {ns.seeds}")
    cfg = config_from_args(ns)
    if ns.tables_only:
        from tdmixup.run.experiments import write_finished_table

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
        report_to=ns.report_to,
        keep_checkpoints=ns.keep_checkpoints,
    )
    return 0


def cmd_env(ns: argparse.Namespace) -> int:
    from tdmixup.core.runio import environment_info

    print(json.dumps(environment_info(), indent=2))
    return 0


class Command(NamedTuple):
    """One subcommand of ``tdmixup``."""

    name: str
    help: str  # also its description
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = (
    Command(
        "run",
        "The whole TDMixUp method end to end (default: CPU-sized SNLI).",
        add_run_options,
        cmd_run,
    ),
    Command(
        "train",
        "Fine-tune with one strategy (optionally on subsets), then evaluate.",
        add_train_options,
        cmd_train,
    ),
    Command(
        "dynamics",
        "Fine-tune while recording training dynamics (Parquet table).",
        add_dynamics_options,
        cmd_dynamics,
    ),
    Command(
        "evaluate",
        "Accuracy, ECE, NLL, Brier (+ temperature scaling) of a checkpoint.",
        add_evaluate_options,
        cmd_evaluate,
    ),
    Command(
        "datamap",
        "Data map PNG/HTML, statistics and region files from a dynamics table. Give the data "
        "options (e.g. --task snli, or --train-file with --column) to show texts and label names.",
        add_datamap_options,
        cmd_datamap,
    ),
    Command(
        "aum",
        "AUM with threshold samples on a subset: flags likely-mislabeled samples.",
        add_aum_options,
        cmd_aum,
    ),
    Command(
        "experiment",
        "Reproduce the paper's Table 1, 2 or 3 (mean ± sample std over seeds), "
        "or the 'steps' ablation (TDMixUp and random pairs with the baseline's step count).",
        add_experiment_options,
        cmd_experiment,
    ),
    Command(
        "predict",
        "Classify new texts with a checkpoint: calibrated probabilities and label names, "
        "one row per input (accuracy and ECE too when the input has labels).",
        add_predict_options,
        cmd_predict,
    ),
    Command(
        "export",
        "Write a checkpoint as a Hugging Face model folder (temperature folded in, model card); "
        "optionally upload it to the Hub.",
        add_export_options,
        cmd_export,
    ),
    Command(
        "env",
        "Versions, threads, device and world size (for bug reports).",
        lambda parser: None,
        cmd_env,
    ),
)
"""Every subcommand, in ``--help``'s order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``tdmixup`` parser: one subcommand per ``cmd_*``, each with its options from
    :mod:`tdmixup.cli.options`, ``--config FILE`` (:mod:`tdmixup.cli.config_file`), and ``-v``
    before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Log every stage and epoch; show the traceback of an error.",
    )
    add_config_file_option(common)
    parser = argparse.ArgumentParser(
        prog="tdmixup", description="MixUp guided by training dynamics (TDMixUp)."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Log every stage and epoch; show the traceback of an error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(
            command.name, help=command.help, description=command.help, parents=[common]
        )
        command.add_options(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``tdmixup`` entry point; returns the exit status (see
    :func:`tdmixup.cli.preflight.run_command`)."""
    from tdmixup.cli.preflight import EXIT_USAGE, run_command

    parser = build_parser()
    try:
        ns = parse_args_with_config_file(parser, argv)  # --config FILE, then the flags over it
    except ConfigFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if ns.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    logging.getLogger("tdmixup.training.loop").setLevel(
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
