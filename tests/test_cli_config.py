"""``--config FILE`` (tdmixup.cli.config_file): options from JSON/YAML/TOML, the command line
over the file, a run's own ``config.json`` read back, one-line errors; and the docs' "Config
files" example, which repeats a run from its ``config.json`` with the same numbers (tiny random
BERT, real SNLI)."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import SMALL, build_tiny_model_dir, quiet_libraries, require_snli  # noqa: E402
from tdmixup import __version__  # noqa: E402
from tdmixup.cli.commands import build_parser, main  # noqa: E402
from tdmixup.cli.config_file import ConfigFileError, parse_args_with_config_file  # noqa: E402
from tdmixup.cli.options import config_from_args  # noqa: E402
from tdmixup.core import config as C  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> Any:
    return parse_args_with_config_file(build_parser(), list(argv))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def run_record(cfg: C.RunConfig, *, version: str = __version__) -> dict[str, Any]:
    """A run folder's config.json as open_session writes it (environment abridged)."""
    return {
        "config": C.to_json_dict(cfg),
        "environment": {"python": "3.11", "world_size": 1, "versions": {"tdmixup": version}},
    }


# --- the file's values, and the command line over them ----------------------------------------
def test_yaml_sets_options_by_name_and_by_section_and_flags_override(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "train_size: 400\nlearning_rate: 1e-5   # YAML reads this as a string\n"
        "column: {text_a: premise, text_b: hypothesis, label: gold}\n"
        "test_file: {ood: ood.jsonl}\ngroup_by_length: false\n"
        "train: {epochs: 2, seed: 7}\naum: {percentile: 50}\noutput_dir: runs/from_file\n",
    )
    ns = parse("run", "--config", path, "--seed", "9", "--test-file", "other=o.jsonl")
    cfg = config_from_args(ns)
    assert ns.output_dir == "runs/from_file"
    assert (cfg.data.train_size, cfg.train.learning_rate, cfg.train.epochs) == (400, 1e-5, 2)
    assert cfg.data.columns == (("text_a", "premise"), ("text_b", "hypothesis"), ("label", "gold"))
    assert cfg.train.group_by_length is False and cfg.aum.percentile == 50.0
    assert cfg.train.seed == 9  # the flag wins
    assert cfg.data.test_files == ("other=o.jsonl",)  # replaced, not appended to the file's
    assert cfg.data.dev_size == 500  # untouched: the profile's


def test_toml_reads_like_yaml_and_the_docs_files_agree(tmp_path: Path) -> None:
    """The docs' TOML file gives the same configuration as their YAML file; TOML's inline
    tables and lists map like YAML's."""
    text = (REPO / "docs" / "guides" / "method.md").read_text().split("## Config files", 1)[1]
    toml_text = text.split("```toml\n", 1)[1].split("```", 1)[0]
    yaml_text = readme_config_example()[0]
    from_toml = config_from_args(parse("run", "--config", write(tmp_path / "c.toml", toml_text)))
    from_yaml = config_from_args(parse("run", "--config", write(tmp_path / "c.yaml", yaml_text)))
    assert from_toml == from_yaml and from_toml.data.train_size == 400
    assert (from_toml.train.seed, from_toml.train.epochs, from_toml.aum.percentile) == (1, 2, 50)
    path = write(
        tmp_path / "d.toml",
        'learning_rate = 1e-5\ncolumn = {text_a = "premise", label = "gold"}\n'
        'label_names = ["no", "yes"]\n[train]\ngroup_by_length = false\n',
    )
    cfg = config_from_args(parse("train", "--config", path, "--output-dir", "x"))
    assert cfg.data.columns == (("text_a", "premise"), ("label", "gold"))
    assert cfg.data.label_names == ("no", "yes") and cfg.train.learning_rate == 1e-5
    assert cfg.train.group_by_length is False


def test_the_file_supplies_required_options_and_positionals(tmp_path: Path) -> None:
    assert (
        parse("train", "--config", write(tmp_path / "t.yaml", "output_dir: runs/t\n")).output_dir
        == "runs/t"
    )
    path = write(tmp_path / "c.json", json.dumps({"output_dir": "runs/t", "table": "table2"}))
    assert parse("experiment", "--config", path, "--seeds", "2").table == "table2"
    assert parse("experiment", "table3", "--config", path).table == "table3"
    with pytest.raises(SystemExit):  # still required when the file does not give it
        parse("train", "--config", write(tmp_path / "e.yaml", "seed: 1\n"))


def test_a_runs_config_json_gives_back_its_config(tmp_path: Path) -> None:
    cfg = C.RunConfig(
        data=C.DataConfig(train_size=96, test_files=("t=x.jsonl",), columns=(("text_a", "p"),)),
        train=C.TrainConfig(seed=5, learning_rate=3e-4, steps_per_epoch=7),
        aum=C.AUMConfig(percentile=70.0, threshold_balance="equal", subsets=("easy", "ambiguous")),
        dynamics=C.DynamicsConfig(stratify_regions=False),
    )
    path = write(tmp_path / "config.json", json.dumps(run_record(cfg)))
    assert config_from_args(parse("run", "--config", path)) == cfg
    ns = parse("run", "--config", path, "--seed", "2", "--profile", "paper")
    assert config_from_args(ns) == C.RunConfig(
        data=cfg.data, train=C.TrainConfig(**{**vars(cfg.train), "seed": 2}), aum=cfg.aum,
        dynamics=cfg.dynamics,
    )  # fmt: skip


def test_a_runs_strategy_comes_back_as_the_commands_strategy(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.json", json.dumps(run_record(C.RunConfig())))
    saliency = C.RunConfig(mixup=C.MixupConfig(strategy="aum_saliency"))
    other = write(tmp_path / "b.json", json.dumps(run_record(saliency)))
    assert parse("run", "--config", plain).strategy == "tdmixup"  # run records its default as none
    assert parse("run", "--config", other).strategy == "aum_saliency"
    mixup = write(tmp_path / "m.json", json.dumps({"mixup": {"strategy": "mixup"}}))
    assert parse("train", "--config", mixup, "--output-dir", "o").strategy == "mixup"
    with pytest.raises(ConfigFileError, match=r"m.json: mixup.strategy 'mixup': `tdmixup run"):
        parse("run", "--config", mixup)


def test_a_command_reads_only_the_fields_it_has_options_for(tmp_path: Path) -> None:
    cfg = C.RunConfig(data=C.DataConfig(test_size=32), train=C.TrainConfig(seed=3))
    path = write(tmp_path / "config.json", json.dumps(run_record(cfg)))
    ns = parse("evaluate", "--config", path, "--checkpoint", "ck")
    assert ns.data__test_size == 32 and ns.train__eval_batch_size == 64
    assert not hasattr(ns, "train__seed") and not hasattr(ns, "aum__percentile")
    assert parse("env", "--config", path).command == "env"


def test_an_old_runs_config_json_keeps_the_settings_it_ran_with(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = run_record(C.RunConfig(), version="0.0.1")
    del record["config"]["aum"]["percentile"], record["config"]["dynamics"]["stratify_regions"]
    path = write(tmp_path / "config.json", json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="tdmixup.cli"):
        cfg = config_from_args(parse("run", "--config", path))
    assert cfg.aum.percentile == 80.0 and cfg.dynamics.stratify_regions is False
    assert f"written by tdmixup 0.0.1 and this is {__version__}" in caplog.text
    assert "has no aum.percentile: the run used 80.0" in caplog.text


# --- one-line errors naming the file and the key --------------------------------------------
@pytest.mark.parametrize(
    ("text", "argv", "message"),
    [
        ("trian_size: 4\n", ["run"], "unknown key 'trian_size': neither a config field nor an "
         "option of `tdmixup run`; did you mean 'train_size'?"),
        ("train: {epoch: 2}\n", ["evaluate", "--checkpoint", "c"], "unknown key 'train.epoch'"),
        ("trainer: {epochs: 2}\n", ["run"], "unknown key 'trainer'"),
        ("seeds: 3\n", ["run"], "unknown key 'seeds': neither a config field nor an option of "
         "`tdmixup run`"),  # experiment's option
        ("train: 3\n", ["run"], "train: expected a mapping of train fields"),
        ("train: {epochs: two}\n", ["run"], "train.epochs: expected a whole number, got 'two'"),
        ("batch_size: 8.5\n", ["run"], "batch_size: expected a whole number, got 8.5"),
        ("group_by_length: 'no'\n", ["run"], "group_by_length: expected true or false"),
        ("until: stage9\n", ["run"], "until: expected one of full, datamap, aum, tdmixup, report"),
        ("train_size: some\n", ["run"], "train_size: expected an integer or 'all'"),
        ("column: [text_a]\n", ["run"], "column: expected FIELD: COLUMN pairs"),
        ("seed: 1\ntrain: {seed: 2}\n", ["run"], "seed and train.seed set the same option"),
        ("- 1\n", ["run"], "expected a mapping of option: value at the top, got list"),
        ("a: [1\n", ["run"], "not valid YAML"),
        ("config: x.yaml\n", ["run"], "a config file cannot name another"),
        ("verbose: true\n", ["run"], "verbose: give --verbose on the command line"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, argv: list[str], message: str
) -> None:
    path = write(tmp_path / "bad.yaml", text)
    assert main([*argv, "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and message in err
    assert err.count("\n") == 1


def test_unreadable_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err == f"error: --config {tmp_path}/missing.json: No such file or " \
        "directory\n"  # fmt: skip
    assert main(["run", "--config", write(tmp_path / "c.ini", "")]) == 2
    assert "expected a .json, .yaml, .yml or .toml file" in capsys.readouterr().err
    assert main(["run", "--config", write(tmp_path / "c.toml", "seed = \n")]) == 2
    assert "c.toml: not valid TOML: Invalid value (at line 1, column 8)" in capsys.readouterr().err
    assert main(["run", "--config", write(tmp_path / "c.json", "{'a': 1}")]) == 2
    assert "c.json: not valid JSON: Expecting property name" in capsys.readouterr().err


# --- the README's example, end to end ------------------------------------------------------
def readme_config_example() -> tuple[str, list[list[str]]]:
    """The YAML file and the ``tdmixup`` lines of the "Config files" section of
    docs/guides/method.md."""
    text = (REPO / "docs" / "guides" / "method.md").read_text().split("## Config files", 1)[1]
    yaml_text = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    lines = text.split("# config files\n", 1)[1].split("```", 1)[0].splitlines()
    return yaml_text, [shlex.split(line.split("  #", 1)[0]) for line in lines]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_readme_config_example_repeats_a_run_with_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_text, commands = readme_config_example()
    assert yaml_text.startswith("# snli_small.yaml\n") and len(commands) == 3
    require_snli()
    quiet_libraries()
    tiny = str(build_tiny_model_dir(tmp_path / "tiny"))
    monkeypatch.chdir(tmp_path)
    Path("snli_small.yaml").write_text(yaml_text)
    first, again, seed2 = commands
    assert main([*first[1:], "--model", tiny, *SMALL]) == 0  # smoke sizes over the file's
    assert main(again[1:]) == 0  # as written: everything from runs/small/config.json
    small, repeat = (
        json.loads(Path(f"runs/{r}/config.json").read_text()) for r in ("small", "small_again")
    )
    assert small["config"] == repeat["config"]
    cfg = small["config"]
    assert (cfg["train"]["seed"], cfg["aum"]["percentile"]) == (1, 50.0)  # from the YAML
    assert cfg["data"]["train_size"] == 48  # the command line over the YAML's 400
    for stage in ("stage1_full", "stage4_tdmixup"):
        a, b = (
            json.loads(Path(f"runs/{r}/{stage}/done.json").read_text())
            for r in ("small", "small_again")
        )
        assert a["metrics"] == b["metrics"] and a["train_sizes"] == b["train_sizes"]
    for table in (
        "stage1_full/dynamics.parquet",
        "aum_easy/aum.parquet",
        "datamap/regions/easy.txt",
    ):
        assert (
            Path("runs/small", table).read_bytes() == Path("runs/small_again", table).read_bytes()
        )
    variant = json.loads(json.dumps(C.to_json_dict(config_from_args(parse(*seed2[1:])))))
    assert variant["train"] == {**cfg["train"], "seed": 2}  # the third line: parsed, not trained
    assert variant["data"] == cfg["data"] and variant["mixup"] == cfg["mixup"]
