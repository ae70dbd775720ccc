"""The command line's options: each command's own (:func:`add_run_options`, …) and one option per
field of the config dataclasses (:func:`add_config_options`), read back into a
:class:`~tdmixup.core.config.RunConfig` by :func:`config_from_args`.

A command starts from a profile (``--profile``, default ``cpu-small``;
:data:`tdmixup.core.config.PROFILES`) and each option given replaces only its own value, so the
defaults ``tdmixup <command> --help`` shows are the ones the command uses. Only the standard
library, :mod:`tdmixup.core.config` and :mod:`tdmixup.core.layout` are imported, so ``--help`` loads
no torch. The commands themselves are in :mod:`tdmixup.cli.commands`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin

from tdmixup.core import config as C
from tdmixup.core.layout import STAGES

SECTIONS = C.SECTIONS  # each config section's dataclass (kept here for ``cli.options`` users)

EXPERIMENT_TABLES = ["table1", "table2", "table3", "steps"]
"""The keys of :data:`tdmixup.evaluation.tables.TABLES` (kept here so `--help` needs no torch
import)."""


def _option(section: str, name: str) -> str:
    return C.cli_option(section, name)


def _dest(section: str, name: str) -> str:
    return f"{section}__{name}"


def add_config_options(
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
    ("data", "test_files"): "[NAME=]PATH",
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


# --- each command's own options ------------------------------------------------------------
_TRAINING = ("data", "model", "train")
"""The config sections of every command that trains."""

_KEEP = (
    "Keep each finished stage's optimizer, scheduler and RNG state "
    "(checkpoint/training_state.pt, about twice the model's size); "
    "by default only an unfinished stage keeps it, to resume exactly."
)


def _add_restart_options(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``, ``--keep-training-state`` and ``--report-to``, for the commands that train
    into a folder."""
    parser.add_argument(
        "--overwrite", action="store_true", help="Delete the output folder first and start afresh."
    )
    parser.add_argument("--keep-training-state", action="store_true", help=_KEEP)
    _add_report_to_option(parser)


def _add_report_to_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report-to",
        choices=list(get_args(C.ReportTo)),
        default="none",
        help="Also log each training stage as one run (loss and learning rate every 20 steps, "
        "accuracy and dev metrics per epoch, final metrics) to TensorBoard, W&B or MLflow; "
        "local files go to OUTPUT_DIR/tracking/ (default: none; needs "
        "pip install 'tdmixup[tracking]').",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup run``: the run folder, which stages to run, stages 3-4's strategy, every config."""
    parser.add_argument(
        "--output-dir",
        default="runs/default",
        metavar="OUTPUT_DIR",
        help="Run folder: config.json, one folder per stage, report.md (default: runs/default).",
    )
    parser.add_argument(
        "--from-stage",
        choices=list(STAGES),
        default=None,
        help="Re-run this stage and all later ones (their folders are deleted first); "
        "earlier finished stages are reused.",
    )
    parser.add_argument(
        "--until",
        choices=list(STAGES),
        default="report",
        help="Stop after this stage (default: report, i.e. all).",
    )
    _add_restart_options(parser)
    parser.add_argument(
        "--strategy",
        choices=["tdmixup", "aum_saliency"],
        default="tdmixup",
        help="Stages 3-4: TDMixUp (AUM threshold runs, easy x ambiguous) "
        "or aum_saliency (Park & Caragea, ACL 2022: median-AUM split of stage 1, "
        "saliency-guided partners).",
    )
    add_config_options(parser, tuple(SECTIONS))


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup train``: the strategy, its subset files, dynamics, the folder, training configs."""
    parser.add_argument(
        "--strategy",
        choices=list(get_args(C.Strategy)),
        default="none",
        help="Training strategy; none is plain fine-tuning, "
        "tdmixup needs two --subset files (default: none).",
    )
    parser.add_argument(
        "--subset",
        action="append",
        metavar="SUBSET",
        help="Id file (one sample_id per line, e.g. datamap/regions/easy.txt); "
        "repeatable: the union is trained on, or with --strategy tdmixup the easy set, "
        "then the ambiguous set.",
    )
    parser.add_argument(
        "--record-dynamics",
        choices=["epoch_end", "train_pass"],
        default=None,
        help="Also record training dynamics (dynamics.parquet) in this mode.",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for config.json, checkpoint/, metrics.json and done.json.",
    )
    _add_restart_options(parser)
    add_config_options(parser, (*_TRAINING, "mixup"))


def add_dynamics_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup dynamics``: the folder, training configs and the recording mode."""
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for dynamics.parquet, checkpoint/, metrics.json and config.json.",
    )
    _add_restart_options(parser)
    add_config_options(parser, (*_TRAINING, "dynamics"), only={"dynamics": ("mode",)})


def add_evaluate_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup evaluate``: the checkpoint, where to write, the data and the eval batch size."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CHECKPOINT",
        help="A checkpoint folder written by train, dynamics or run "
        "(e.g. runs/x/stage1_full/checkpoint).",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        metavar="OUTPUT_DIR",
        help="Also write metrics.json and reliability diagrams to this folder "
        "(default: print only).",
    )
    add_config_options(parser, ("data", "train"), only={"train": ("eval_batch_size",)})


def add_datamap_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup datamap``: the dynamics table, the folder, the title, regions and data options."""
    parser.add_argument(
        "--dynamics",
        required=True,
        metavar="DYNAMICS",
        help="dynamics.parquet written by `tdmixup dynamics`.",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for datamap.png, datamap.html, statistics.parquet, suspects.csv and regions/.",
    )
    parser.add_argument(
        "--title",
        default=None,
        metavar="TITLE",
        help="Plot title (default: task, samples, epochs and mode of the dynamics table).",
    )
    add_config_options(
        parser,
        ("dynamics", "data"),
        only={
            "dynamics": (
                "fraction",
                "allow_overlap",
                "stratify_regions",
                "rank_by",
                "flag_fraction",
            )
        },
    )


def add_aum_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup aum``: the subset, the folder, training configs and the AUM procedure."""
    parser.add_argument(
        "--subset",
        default=None,
        metavar="SUBSET",
        help="Id file of the subset, e.g. datamap/regions/easy.txt "
        "(default: the whole training set); the data map's statistics.parquet "
        "beside regions/ adds confidence and variability to the CSV files.",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="Folder for aum.parquet, kept.txt/.csv, flagged.csv and summary.json.",
    )
    _add_restart_options(parser)
    add_config_options(
        parser,
        (*_TRAINING, "aum"),
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


def add_experiment_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup experiment``: the table, seeds, folder, rows, ``--tables-only``, every config."""
    parser.add_argument("table", choices=EXPERIMENT_TABLES, help="Which table to reproduce.")
    parser.add_argument(
        "--seeds", type=int, default=3, metavar="SEEDS", help="Run seeds 1..SEEDS (default: 3)."
    )
    parser.add_argument(
        "--output-dir",
        default="runs/experiments",
        metavar="OUTPUT_DIR",
        help="Folder for one run folder per seed and the table files (default: runs/experiments).",
    )
    parser.add_argument("--keep-training-state", action="store_true", help=_KEEP)
    _add_report_to_option(parser)
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="Keep every finished row's model (checkpoint/). By default a row's checkpoint is "
        "deleted once its metrics are in done.json (the tables read only those), so a seed of "
        "Table 2 keeps dynamics, statistics and metrics, not 8 models.",
    )
    parser.add_argument(
        "--rows",
        action="append",
        metavar="ROWS",
        help="Run only these rows of the table (keys as in table.json, e.g. full_ls,aum_saliency); "
        "repeatable or comma-separated (default: every row).",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="Train nothing: write the table from the rows and seeds already finished "
        "in --output-dir (e.g. while a long run is going); unfinished rows show 'not run yet'.",
    )
    add_config_options(parser, tuple(SECTIONS))
