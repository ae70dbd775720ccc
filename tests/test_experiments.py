"""`tdmixup experiment table1|table2|table3|steps` at smoke size on real SNLI with a tiny random
BERT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import SMALL, build_tiny_model_dir, quiet_libraries, require_snli  # noqa: E402
from tdmixup.cli.commands import EXPERIMENT_TABLES, main  # noqa: E402
from tdmixup.run.experiments import TABLES, aggregate, write_table  # noqa: E402


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_snli()
    quiet_libraries()
    model = str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))
    out = tmp_path_factory.mktemp("experiments")
    for table in ("table1", "table2", "table3", "steps"):
        assert (
            main(
                [
                    "experiment",
                    table,
                    "--seeds",
                    "2",
                    "--output-dir",
                    str(out),
                    "--model",
                    model,
                    *SMALL,
                ]
            )
            == 0
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("table", ["table1", "table2", "table3", "steps"])
def test_table_files_have_every_row(tables: Path, table: str) -> None:
    data = json.loads((tables / table / "table.json").read_text())
    assert list(data["rows"]) == [row.key for row in TABLES[table]]
    md = (tables / table / "table.md").read_text()
    csv_lines = (tables / table / "table.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(TABLES[table])
    assert (tables / table / "accuracy_vs_ece.png").stat().st_size > 1000
    for key, row in data["rows"].items():
        if key == "backtranslation":  # the Marian models need the hub: an honest "skipped"
            assert row["seeds"] == 0 and row["skipped"] and "skipped" in md
            continue
        assert row["seeds"] == 2, key
        for metrics in row["sets"].values():
            assert 0 <= metrics["accuracy"]["mean"] <= 100 and metrics["accuracy"]["std"] >= 0
        # the ablation rows and the rows beyond the paper have no paper numbers
        # (full_ts: Desai & Durrett's)
        ablation = key.endswith(("_steps", "_samples", "_paper_weights")) or key in (
            "full_ls",
            "aum_saliency",
        )
        assert (row["paper"] is None) == ablation, key
    assert "90.31 / 1.22" in md or table == "table1"


@pytest.mark.slow
def test_rows_reuse_shared_stages(tables: Path) -> None:
    """The 100% row, the data map, AUM and TDMixUp were trained once per seed for all tables."""
    for seed in (1, 2):
        run = tables / f"seed_{seed}"
        assert (run / "stage1_full" / "done.json").exists()
        assert (run / "aum_easy" / "aum.parquet").exists() and (
            run / "aum_ambiguous" / "aum.parquet"
        ).exists()
        rows = sorted(p.name for p in (run / "rows").iterdir())
        assert not {"full", "tdmixup", "full_ts", "aum_saliency"} & set(
            rows
        )  # stage 1 / the pipeline's stage 4
        assert {
            "easy",
            "easy_aum",
            "mixup",
            "manifold",
            "kong",
            "random_pairs",
            "tdmixup_noaum",
            "full_ls",
        } <= set(rows)
        assert (run / "stage4_aum_saliency" / "done.json").exists()
        # the tables need only each row's done.json: no model is kept (--keep-checkpoints)
        assert not list(run.rglob("checkpoint")), list(run.rglob("checkpoint"))


def test_sizes_cell_shows_the_range_over_seeds() -> None:
    from tdmixup.evaluation.tables import _sizes_cell

    assert _sizes_cell([[413, 495], [391, 495], [278, 495]]) == "(278–413) + 495"
    assert _sizes_cell([[1500], [1500]]) == "1500"
    assert _sizes_cell([]) == ""


def _seed_run(acc: float) -> dict:
    return {
        "metrics": {"sets": {"t": {"accuracy": acc, "ece": 0.1, "ece_scaled": 0.05}}},
        "train_sizes": [10],
        "train_seconds": 1.0,
    }


def test_aggregate_mean_and_sample_std() -> None:
    agg = aggregate({1: _seed_run(0.8), 2: _seed_run(0.9), 3: _seed_run(0.7)})
    assert agg["seeds"] == 3 and agg["train_sizes_per_seed"] == [[10], [10], [10]]
    assert agg["sets"]["t"]["accuracy"]["mean"] == pytest.approx(80.0)
    assert agg["sets"]["t"]["accuracy"]["std"] == pytest.approx(
        10.0
    )  # sqrt((100 + 0 + 100) / 2); population: 8.16
    assert agg["sets"]["t"]["ece"]["std"] == pytest.approx(0.0)


def test_one_seed_reports_no_std_and_tables_say_which_std(tmp_path: Path) -> None:
    one = aggregate({1: _seed_run(0.8)})
    assert one["sets"]["t"]["accuracy"] == {"mean": pytest.approx(80.0), "std": None}
    rows = TABLES["table3"][:2]
    results = {
        rows[0].key: {1: _seed_run(0.8)},
        rows[1].key: {1: _seed_run(0.7), 2: _seed_run(0.9)},
    }
    write_table("table3", rows, results, "snli", tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "80.00 ± –" in md and "80.00 ± 14.14" in md
    assert "± sample std over seeds (ddof = 1" in md and "mean ± sample std over seeds" in md
    assert (
        json.loads((tmp_path / "table.json").read_text())["rows"][rows[0].key]["sets"]["t"][
            "accuracy"
        ]["std"]
        is None
    )


@pytest.mark.slow
def test_steps_rows_train_as_many_steps_as_the_full_row(tables: Path) -> None:
    """48 pairs at batch 8 = 6 steps per epoch for the 100 % row; TDMixUp's subsets (~16 pairs
    each) take 2 per epoch by the paper's definition, 6 in the ``_steps`` rows and 3 (= 48 rows
    at two batches of 8 per step) in the ``_samples`` rows; random pairs the same."""

    def steps(run: Path, stage: str) -> list[int]:
        return [h["steps"] for h in json.loads((run / stage / "done.json").read_text())["history"]]

    for seed in (1, 2):
        run = tables / f"seed_{seed}"
        assert steps(run, "stage1_full") == [6, 6]
        assert steps(run, "rows/tdmixup_steps") == [6, 6] and steps(
            run, "rows/random_pairs_steps"
        ) == [6, 6]
        assert steps(run, "rows/tdmixup_samples") == [3, 3] and steps(
            run, "rows/random_pairs_samples"
        ) == [3, 3]
        assert max(steps(run, "stage4_tdmixup")) < 6 and max(steps(run, "rows/random_pairs")) < 6
    md = (tables / "steps" / "table.md").read_text()
    assert "Not in the paper" in md


@pytest.mark.slow
def test_paper_weights_row_trains_with_the_paper_codes_loss(tables: Path) -> None:
    for seed in (1, 2):
        done = json.loads(
            (tables / f"seed_{seed}" / "rows" / "tdmixup_paper_weights" / "done.json").read_text()
        )
        assert done["mixup"]["mixed_weight"] == pytest.approx(0.01 * 8 / 3)  # batch 8, 3 classes
        assert done["mixup"]["unmixed_weight"] == 0.5 and done["mixup"]["strategy"] == "tdmixup"


def test_paper_weights_row_config() -> None:
    """SNLI (batch 16, 3 classes): `--mixed-weight 0.0533 --unmixed-weight 0.5`, the rest
    unchanged."""
    from tdmixup.core.config import MixupConfig
    from tdmixup.run.experiments import Row, row_mixup_config

    (row,) = [r for r in TABLES["table3"] if r.key == "tdmixup_paper_weights"]
    config = row_mixup_config(row, MixupConfig(alpha=0.3), batch_size=16, num_classes=3)
    assert config.mixed_weight == pytest.approx(0.0533, abs=1e-4) and config.unmixed_weight == 0.5
    assert config.strategy == "tdmixup" and config.alpha == 0.3
    assert row_mixup_config(
        row, MixupConfig(), batch_size=4, num_classes=4
    ).mixed_weight == pytest.approx(0.01)  # SWAG
    with pytest.raises(ValueError, match="not a MixupConfig field"):
        Row("x", "x", mixup=(("mixed_weigth", 0.1),))
    with pytest.raises(ValueError, match="wrong type"):
        Row("x", "x", mixup=(("alpha", "paper_code"),))
    assert Row("x", "x", mixup=(("mix_at", "embeddings"),)).mixup == (("mix_at", "embeddings"),)
    with pytest.raises(ValueError, match="epoch must be"):
        Row("x", "x", epoch="twice")  # type: ignore[arg-type]


@pytest.mark.slow
def test_table2_scaling_and_smoothing_rows(tables: Path) -> None:
    """ "100% + temperature scaling" is the 100 % run read after scaling; "+ label smoothing"
    trained with ε = 0.1."""
    data = json.loads((tables / "table2" / "table.json").read_text())["rows"]
    for name, full in data["full"]["sets"].items():
        scaled = data["full_ts"]["sets"][name]
        assert scaled["ece"] == full["ece_scaled"] and scaled["accuracy"] == full["accuracy"]
    config = json.loads((tables / "seed_1" / "rows" / "full_ls" / "done.json").read_text())
    assert config["strategy"] == "none"
    md = (tables / "table2" / "table.md").read_text()
    assert "ECE (T)" in md and "lowest ECE on `snli_test`: as trained" in md


def _result(acc: float, ece: float, ece_scaled: float) -> dict:
    return {
        "metrics": {"sets": {"t": {"accuracy": acc, "ece": ece, "ece_scaled": ece_scaled}}},
        "train_sizes": [10],
        "train_seconds": 1.0,
    }


def test_write_table_shows_scaled_ece_and_the_winners(tmp_path: Path) -> None:
    from tdmixup.run.experiments import Row, write_table

    rows = (
        Row("full", "100%"),
        Row("full_ts", "100% + TS", temperature_scaled=True),
        Row("mix", "MixUp", strategy="mixup"),
    )
    results = {
        "full": {1: _result(0.7, 0.05, 0.02), 2: _result(0.7, 0.07, 0.02)},
        "full_ts": {1: _result(0.7, 0.05, 0.02), 2: _result(0.7, 0.07, 0.02)},
        "mix": {1: _result(0.6, 0.03, 0.04), 2: _result(0.6, 0.03, 0.04)},
    }
    write_table("table2", rows, results, "snli", tmp_path)
    md = (tmp_path / "table.md").read_text()
    header = md.splitlines()[2]
    assert "t Acc | t ECE | t ECE (T)" in header
    assert "| 100% + TS | 10 | 2 | 70.00 ± 0.00 | 2.00 ± 0.00 | 2.00 ± 0.00 |" in md
    assert "| 100% | 10 | 2 | 70.00 ± 0.00 | 6.00 ± 1.41 | 2.00 ± 0.00 |" in md
    assert (
        "- lowest ECE on `t`: as trained **MixUp** (3.00; next 100% 6.00); "
        "after temperature scaling **100%** "
        "(2.00; next MixUp 4.00); for comparison 100% + TS 2.00"
    ) in md
    data = json.loads((tmp_path / "table.json").read_text())
    assert data["rows"]["full_ts"]["sets"]["t"]["ece"]["mean"] == pytest.approx(2.0)
    assert (tmp_path / "table.csv").read_text().splitlines()[0].count("ECE (T)") == 1


def test_cli_offers_every_table() -> None:
    assert EXPERIMENT_TABLES == list(TABLES)


def test_tables_only_writes_the_finished_rows_without_training(tmp_path: Path) -> None:
    """`experiment table3 --tables-only`: rows finished in some seeds are aggregated over those
    seeds, a row finished in none says "not run yet"; nothing is trained (no session is opened)."""
    from tdmixup.cli.commands import main
    from tdmixup.run.experiments import row_folder
    from tdmixup.run.pipeline import DONE

    rows = {row.key: row for row in TABLES["table3"]}
    for seed, acc in ((1, 0.6), (2, 0.8)):  # random pairs finished in seeds 1 and 2
        folder = row_folder(tmp_path / f"seed_{seed}", rows["random_pairs"])
        folder.mkdir(parents=True)
        (folder / DONE).write_text(json.dumps(_seed_run(acc)))
    folder = row_folder(tmp_path / "seed_1", rows["tdmixup"])  # TDMixUp (stage 4) in seed 1 only
    assert folder == tmp_path / "seed_1" / "stage4_tdmixup"
    folder.mkdir(parents=True)
    (folder / DONE).write_text(json.dumps(_seed_run(0.7)))
    assert (
        main(
            ["experiment", "table3", "--tables-only", "--seeds", "3", "--output-dir", str(tmp_path)]
        )
        == 0
    )
    md = (tmp_path / "table3" / "table.md").read_text()
    lines = {
        line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")
    }
    assert "| 2 | 70.00 ± 14.14 |" in lines[rows["random_pairs"].label]
    assert "| 1 | 70.00 ± – |" in lines[rows["tdmixup"].label]
    assert "not run yet" in lines[rows["tdmixup_paper_weights"].label]
    assert not (tmp_path / "seed_3").exists()


def test_rows_option_selects_rows_and_refuses_unknown_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdmixup.cli.commands import main
    from tdmixup.run.experiments import select_rows

    assert [r.key for r in select_rows("table2", ["aum_saliency", "full_ls"])] == [
        "full_ls",
        "aum_saliency",
    ]
    assert select_rows("table3") == TABLES["table3"]
    with pytest.raises(
        ValueError, match="full_lx is not a row of table2; its rows are full, mixup"
    ):
        select_rows("table2", ["full_lx"])
    assert (
        main(["experiment", "table2", "--rows", "full,full_lx", "--output-dir", str(tmp_path)]) == 2
    )
    assert "--rows: full_lx is not a row of table2" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_rows_drop_their_checkpoints_unless_asked_to_keep(tmp_path: Path) -> None:
    """A finished row keeps its metrics (done.json) but not its model: the tables read only the
    metrics. ``--keep-checkpoints`` keeps the model."""
    require_snli()
    quiet_libraries()
    model = str(build_tiny_model_dir(tmp_path / "tiny"))
    base = ["experiment", "table2", "--rows", "full", "--seeds", "1", "--model", model, *SMALL]
    assert main([*base, "--output-dir", str(tmp_path / "drop")]) == 0
    stage = tmp_path / "drop" / "seed_1" / "stage1_full"
    assert (stage / "done.json").exists() and (stage / "dynamics.parquet").exists()
    assert not (stage / "checkpoint").exists()
    readme = (Path(__file__).resolve().parents[1] / "docs/guides/at-scale.md").read_text()
    assert "tdmixup experiment table2 --task snli --seeds 5 --keep-checkpoints" in readme
    assert main([*base, "--output-dir", str(tmp_path / "keep"), "--keep-checkpoints"]) == 0
    assert (tmp_path / "keep" / "seed_1" / "stage1_full" / "checkpoint" / "head.pt").exists()
