"""The run folder's names (tdmixup.core.layout): fixed, because existing run folders are read
by them."""

from __future__ import annotations

from pathlib import Path

import tdmixup.core.layout as L
from tdmixup.core.layout import ExperimentLayout, RunLayout


def test_the_names_on_disk_stay_what_existing_run_folders_hold() -> None:
    run = RunLayout(Path("r"))
    paths = {
        run.config: "r/config.json",
        run.report: "r/report.md",
        run.stage1: "r/stage1_full",
        run.stage1_dynamics: "r/stage1_full/dynamics.parquet",
        run.statistics: "r/datamap/statistics.parquet",
        run.region_file("easy"): "r/datamap/regions/easy.txt",
        run.region_csv("hard"): "r/datamap/regions/hard.csv",
        run.datamap_png: "r/datamap/datamap.png",
        run.datamap_html: "r/datamap/datamap.html",
        run.aum_table("easy"): "r/aum_easy/aum.parquet",
        run.aum_kept("easy"): "r/aum_easy/kept.txt",
        run.aum_summary("ambiguous"): "r/aum_ambiguous/summary.json",
        L.aum_pass_dir(run.aum_dir("easy"), 2): "r/aum_easy/pass2",
        run.tdmixup: "r/stage4_tdmixup",
        run.aum_saliency_stage: "r/stage4_aum_saliency",
        run.aum_saliency_split_table: "r/aum_saliency_split/split.parquet",
        run.row_dir("full_ls"): "r/rows/full_ls",
        run.stage1 / L.CHECKPOINT / L.TRAINING_STATE: "r/stage1_full/checkpoint/training_state.pt",
        run.stage1 / L.CHECKPOINT / L.TRAIN_LOG: "r/stage1_full/checkpoint/train_log.json",
        run.stage1 / L.DONE: "r/stage1_full/done.json",
        run.tdmixup / L.METRICS: "r/stage4_tdmixup/metrics.json",
        L.reliability_png(run.stage1, "snli_test"): "r/stage1_full/reliability_snli_test.png",
    }
    assert {want: str(p) for p, want in paths.items() if str(p) != want} == {}
    exp = ExperimentLayout(Path("e"))
    assert exp.seed_dir(3) == Path("e/seed_3") and exp.run(3).stage1 == Path("e/seed_3/stage1_full")
    assert exp.table_md("table2") == Path("e/table2/table.md")
    assert exp.backtranslation_cache == Path("e/backtranslation_cache")
    assert L.STAGES == ("full", "datamap", "aum", "tdmixup", "report")


def test_stage_dirs_and_the_folders_found(tmp_path: Path) -> None:
    for name in (
        "aum_easy",
        "aum_saliency_split",
        "aum_ambiguous",
        "seed_10",
        "seed_2",
        "seed_2_chaosnli",
        "rows",
    ):
        (tmp_path / name).mkdir()
    run = RunLayout(tmp_path)
    assert [p.name for p in run.stage_dirs("aum")] == [
        "aum_ambiguous",
        "aum_easy",
        "aum_saliency_split",
    ]
    assert [p.name for p in run.stage_dirs("tdmixup")] == ["stage4_tdmixup", "stage4_aum_saliency"]
    assert run.stage_dirs("report") == [] and run.stage_dirs("full") == [run.stage1]
    assert [L.aum_subset(p) for p in run.aum_dirs()][:2] == ["ambiguous", "easy"]
    seeds = ExperimentLayout(tmp_path).seed_dirs()
    assert seeds == {2: tmp_path / "seed_2", 10: tmp_path / "seed_10"} and list(seeds) == [2, 10]
    (tmp_path / "reliability_b.png").touch()
    (tmp_path / "reliability_a.png").touch()
    assert list(L.reliability_pngs(tmp_path)) == ["a", "b"]


def test_the_module_tree_names_every_folder_and_file() -> None:
    doc = L.__doc__ or ""
    names = [
        value
        for name, value in vars(L).items()
        if name.isupper() and isinstance(value, str) and not name.endswith("PREFIX")
    ]
    assert names and [n for n in names if n not in doc] == []
