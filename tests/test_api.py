"""The public API: every name in ``tdmixup.__all__`` resolves; config round trip; CLI help."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import tdmixup
from tdmixup.cli.commands import build_parser
from tdmixup.core.config import RunConfig, from_json_dict, to_json_dict


@pytest.mark.parametrize("name", tdmixup.__all__)
def test_public_name_resolves(name: str) -> None:
    assert getattr(tdmixup, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        tdmixup.not_a_thing  # noqa: B018


def test_config_json_round_trip_and_unknown_field() -> None:
    cfg = RunConfig()
    assert from_json_dict(to_json_dict(cfg)) == cfg
    bad = to_json_dict(cfg)
    bad["train"]["learning_rat"] = 1.0
    with pytest.raises(ValueError, match="learning_rat"):
        from_json_dict(bad)


def test_every_config_field_is_a_cli_option_with_its_help() -> None:
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]  # type: ignore[union-attr]
    helps = " ".join(a.help or "" for a in run._actions)
    for section in ("data", "model", "train", "mixup", "dynamics", "aum"):
        for f in dataclasses.fields(getattr(RunConfig(), section)):
            if f.name == "strategy":
                continue
            assert f.metadata["help"] in helps, f"{section}.{f.name}"


def test_paper_defaults() -> None:
    cfg = RunConfig()
    assert (
        cfg.train.learning_rate,
        cfg.train.batch_size,
        cfg.train.mc_batch_size,
        cfg.train.epochs,
    ) == (1e-5, 16, 4, 3)
    assert (cfg.train.max_grad_norm, cfg.train.weight_decay, cfg.data.max_seq_length) == (
        1.0,
        0.0,
        256,
    )
    assert (cfg.mixup.alpha, cfg.aum.percentile, cfg.dynamics.fraction) == (0.4, None, 0.33)


@pytest.mark.parametrize(
    ("task", "k"),
    [
        ("snli", 80.0),
        ("qqp", 80.0),
        ("swag", 50.0),
        ("hellaswag", 50.0),
        ("HellaSwag", 50.0),
        ("custom", 80.0),
    ],
)
def test_aum_percentile_defaults_to_the_papers_k_for_the_task(task: str, k: float) -> None:
    from tdmixup.core.config import AUMConfig, DataConfig
    from tdmixup.run.pipeline import with_task_defaults

    cfg = with_task_defaults(RunConfig(data=DataConfig(task=task)))
    assert cfg.aum.percentile == k
    explicit = RunConfig(data=DataConfig(task=task), aum=AUMConfig(percentile=99.0))
    assert with_task_defaults(explicit).aum.percentile == 99.0
    resolved = with_task_defaults(explicit)  # the other unset settings get the new defaults
    assert (resolved.dynamics.stratify_regions, resolved.aum.threshold_balance) == (True, "uniform")
    assert with_task_defaults(resolved) == resolved


def test_bad_step_settings_are_refused_before_anything_runs() -> None:
    from tdmixup.core.config import DynamicsConfig, TrainConfig

    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(steps_per_epoch=0)
    with pytest.raises(ValueError, match="--dynamics-mode epoch_end"):
        RunConfig(train=TrainConfig(steps_per_epoch=10), dynamics=DynamicsConfig(mode="train_pass"))
    RunConfig(
        train=TrainConfig(steps_per_epoch=10)
    )  # with end-of-epoch dynamics (the default) it is fine


def test_steps_table_refuses_a_global_step_count(tmp_path: Path) -> None:
    from tdmixup.core.config import TrainConfig
    from tdmixup.run.experiments import run_experiment

    with pytest.raises(ValueError, match="leave it unset"):
        run_experiment(
            "steps", RunConfig(train=TrainConfig(steps_per_epoch=10)), output_dir=tmp_path, seeds=1
        )
