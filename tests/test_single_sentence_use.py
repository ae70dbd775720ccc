"""A single-sentence classifier end to end, as the docs show: train on tests/fixtures/own_data/
reviews.csv with the CLI, ``tdmixup predict``, ``tdmixup export``, then transformers'
``AutoModelForSequenceClassification`` and ``pipeline("text-classification")`` on plain strings
give ``predict``'s calibrated probabilities (to 1e-4). Tiny random BERT, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "own_data"
NAMES = ("negative", "positive")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def test_single_sentence_csv_trains_predicts_exports_and_loads_in_transformers(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from tdmixup.cli.commands import main
    from tdmixup.inference import TextClassifier

    data = [  # the labels are read from the column "label", their names (sorted) from its cells
        "--task", "custom", "--train-file", str(FIXTURES / "reviews.csv"), "--dev-size", "50",
        "--test-file", str(FIXTURES / "reviews_test.csv"), "--column", "text_a=sentence",
    ]  # fmt: skip
    tiny = ["--model", tiny_model, "--epochs", "1", "--batch-size", "8", "--max-seq-length", "64"]
    run = tmp_path / "runs" / "reviews"
    assert main(["train", *data, *tiny, "--learning-rate", "1e-3", "--output-dir", str(run)]) == 0
    ckpt = run / "checkpoint"
    meta = json.loads((ckpt / "classifier.json").read_text())
    assert meta["kind"] == "single" and meta["id2label"] == {"0": "negative", "1": "positive"}

    out_csv = tmp_path / "predictions.csv"
    test_csv = FIXTURES / "reviews_test.csv"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(test_csv),
                 "--output", str(out_csv)]) == 0  # fmt: skip
    assert "labelled: accuracy" in capsys.readouterr().out
    predicted = pd.read_csv(out_csv)
    sentences = pd.read_csv(test_csv)["sentence"].tolist()
    assert list(predicted.columns[:2]) == ["sentence", "label"]  # the input's row as written
    assert predicted["sentence"].tolist() == sentences
    assert json.loads((run / "metrics.json").read_text())["sets"].keys() == {"reviews_test"}
    probs = predicted[[f"prob_{n}" for n in NAMES]].to_numpy()
    assert (predicted["prediction"] == [NAMES[i] for i in probs.argmax(1)]).all()
    clf = TextClassifier.from_checkpoint(ckpt, device="cpu")
    np.testing.assert_allclose(clf.predict_proba(sentences), probs, atol=1e-5)
    assert clf.predict(sentences[:3]) == predicted["prediction"][:3].tolist()

    exported = tmp_path / "exported" / "reviews"
    assert main(["export", "--checkpoint", str(ckpt), "--output-dir", str(exported)]) == 0
    card = (exported / "README.md").read_text()
    assert "single-text" in card and "text_pair" not in card
    model = AutoModelForSequenceClassification.from_pretrained(exported, trust_remote_code=True)
    assert model.config.id2label == dict(enumerate(NAMES))
    tok = AutoTokenizer.from_pretrained(exported)
    enc = tok(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        got = torch.softmax(model.eval()(**enc).logits, -1).numpy()
    np.testing.assert_allclose(got, probs, atol=1e-4)
    pipe = pipeline("text-classification", model=str(exported), top_k=None, trust_remote_code=True)
    rows = pipe(sentences[:8])
    from_pipe = np.array([[{d["label"]: d["score"] for d in r}[n] for n in NAMES] for r in rows])
    np.testing.assert_allclose(from_pipe, probs[:8], atol=1e-4)
    one = pipe(sentences[0])  # one plain string
    assert {d["label"] for d in (one[0] if isinstance(one[0], list) else one)} == set(NAMES)
