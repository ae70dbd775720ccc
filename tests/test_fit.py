"""``tdmixup.fit`` and ``tdmixup.load_run`` on in-memory data: a DataFrame of SNLI hypotheses
alone (single-sentence, the whole method), a ``datasets.Dataset`` of pairs (one strategy). The
run folder is the CLI's: a second call trains nothing, other data is refused in one line, and
``result.classifier`` predicts what ``tdmixup predict`` does on the same checkpoint. Tiny random
BERT, real SNLI rows, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import (  # noqa: E402
    SNLI_LABELS,
    build_tiny_model_dir,
    quiet_libraries,
    require_minilm,
    snli_columns,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LOOP = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "max_seq_length": 48}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def hypotheses(n: int, skip: int = 0) -> pd.DataFrame:
    cols = snli_columns(n, skip=skip)
    return pd.DataFrame(
        {"hypothesis": cols["text_b"], "gold": [SNLI_LABELS[y] for y in cols["label"]]}
    )


def test_fit_on_a_dataframe_runs_the_method_resumes_and_predicts_as_the_cli(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tdmixup
    from tdmixup.cli.commands import main
    from tdmixup.data.schema import DataError

    train, dev, test = hypotheses(60), hypotheses(20, skip=60), hypotheses(16, skip=80)
    out = tmp_path / "runs" / "hyp"
    kw: dict[str, Any] = dict(text="hypothesis", label="gold", label_names=SNLI_LABELS)
    result = tdmixup.fit(
        train, dev, **kw, output_dir=out, test={"heldout": test}, model=tiny_model, **LOOP
    )
    assert result.stage == out / "stage4_tdmixup" and result.classifier.kind == "single"
    assert set(result.metrics) == {"stage1_full", "stage4_tdmixup"}
    heldout = result.metrics["stage4_tdmixup"]["heldout"]
    assert heldout["n"] == 16 and {"accuracy", "ece", "ece_scaled"} <= set(heldout)
    stats = result.statistics
    assert stats is not None and len(stats) == 60 and stats.index.name == "sample_id"
    assert {"confidence", "variability", "correctness", "aum", "region"} <= set(stats.columns)
    assert (stats["region"] != "").sum() == 3 * int(0.33 * 60)
    aum = pd.read_parquet(out / "aum_easy" / "aum.parquet")
    assert result.flagged_ids.tolist() == sorted(aum.loc[aum["flagged"], "sample_id"].tolist())
    config = json.loads((out / "config.json").read_text())["config"]["data"]
    assert config["task"] == "custom" and config["columns"][0] == ["text_a", "hypothesis"]
    written = pd.read_json(out / "data" / "train.jsonl", lines=True)
    assert written["hypothesis"].tolist() == train["hypothesis"].tolist()

    # the same call again: every stage is done, nothing trains
    import tdmixup.training.loop

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(tdmixup.training.loop, "train", no_training)
    again = tdmixup.fit(
        train, dev, **kw, output_dir=out, test={"heldout": test}, model=tiny_model, **LOOP
    )
    assert again.metrics == result.metrics
    loaded = tdmixup.load_run(out)
    assert loaded.flagged_ids.tolist() == result.flagged_ids.tolist()

    changed = train.copy()
    changed.loc[7, "gold"] = "neutral" if changed.loc[7, "gold"] != "neutral" else "entailment"
    with pytest.raises(DataError, match=r"other data \(first difference: row 7\)") as err:
        tdmixup.fit(changed, dev, **kw, output_dir=out, model=tiny_model, **LOOP)
    assert "\n" not in str(err.value)

    csv = tmp_path / "pred.csv"
    argv = ["predict", "--checkpoint", str(result.stage / "checkpoint")]
    assert (
        main([*argv, "--input", str(out / "data" / "test_heldout.jsonl"), "--output", str(csv)])
        == 0
    )
    cli = pd.read_csv(csv)[[f"prob_{n}" for n in SNLI_LABELS]].to_numpy()
    np.testing.assert_allclose(
        result.classifier.predict_proba(test["hypothesis"].tolist()), cli, atol=1e-5
    )


def test_fit_on_a_dataset_of_pairs_with_one_strategy(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import ClassLabel, Dataset

    import tdmixup

    cols = snli_columns(48)
    ds = Dataset.from_dict(
        {"premise": cols["text_a"], "hypothesis": cols["text_b"], "label": cols["label"]}
    ).cast_column("label", ClassLabel(names=list(SNLI_LABELS)))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C while the rows are tokenised

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr("tdmixup.run.pipeline.train_and_evaluate", interrupted)
        tdmixup.fit(ds, text="premise", text_pair="hypothesis", strategy="mixup",
                    output_dir=tmp_path / "r", model=tiny_model, **LOOP)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "config.json", "data", "train_args.json"
    ]  # fmt: skip
    # nothing trained there, so another strategy (another configuration) may use the folder
    result = tdmixup.fit(
        ds, text="premise", text_pair="hypothesis", strategy="none", output_dir=tmp_path / "r",
        test=ds.select(range(10)), model=tiny_model, dev_size=12, **LOOP,
    )  # fmt: skip
    assert result.classifier.kind == "pair" and result.classifier.label_names == SNLI_LABELS
    assert list(result.metrics) == ["train"] and result.metrics["train"]["test"]["n"] == 10
    assert result.statistics is not None and len(result.statistics) == 36
    assert result.flagged_ids.size == 0
    probs = result.classifier.predict_proba([("A man sleeps.", "A person rests.")])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1)
    with pytest.raises(TypeError, match="unknown option 'epoch'"):
        tdmixup.fit(ds, text="premise", text_pair="hypothesis", output_dir=tmp_path / "x", epoch=1)


def test_the_readme_python_block_runs_as_written(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's "In Python" block on tests/fixtures/own_data/reviews.csv (as ``my_data/``),
    with a tiny model and a short loop put in front of its own arguments."""
    import functools

    import tdmixup

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "README.md").read_text()
    block = text.split("## In Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_data").symlink_to(repo / "tests" / "fixtures" / "own_data")
    small = {"model": tiny_model, **LOOP, "epochs": 1}
    for name in ("fit", "find_label_issues"):
        monkeypatch.setattr(tdmixup, name, functools.partial(getattr(tdmixup, name), **small))
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result, issues = namespace["result"], namespace["issues"]
    assert result.classifier.kind == "single" and result.stage.name == "stage4_tdmixup"
    assert (tmp_path / "runs" / "reviews" / "report.md").exists()
    assert result.metrics["stage4_tdmixup"]["test"]["n"] == 41
    assert len(issues) == 200 and issues["is_label_issue"].sum() == 20
    assert set(issues["given_label"]) == {"negative", "positive"}
