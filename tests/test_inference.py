"""Using a trained classifier: checkpoint metadata, TextClassifier, ``tdmixup predict``,
``tdmixup export`` (transformers, ``pipeline``), the model card and the Hub upload (mocked at its
HTTP boundary). Tiny random BERT models, real SNLI pairs, no network."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import (  # noqa: E402
    SNLI_LABELS,
    build_tiny_model_dir,
    quiet_libraries,
    require_minilm,
    snli_columns,
)

REPO = Path(__file__).resolve().parents[1]
T = 1.7
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _classifier(model_dir: Path, kind: str, num_labels: int, *, seed: int = 0) -> Any:
    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import CheckpointInfo, build_classifier

    torch.manual_seed(seed)
    model = build_classifier(ModelConfig(name_or_path=str(model_dir)), kind, num_labels)  # type: ignore[arg-type]
    with torch.no_grad():  # spread the random head's logits so that T matters
        model.head.weight.mul_(40.0)
        model.head.bias.normal_()
    names = SNLI_LABELS if kind == "pair" else tuple(str(i) for i in range(num_labels))
    columns = (
        (("text_a", "sentence1"), ("text_b", "sentence2"), ("label", "gold_label"))
        if kind == "pair"
        else (("context", "context"), ("endings", "endings"), ("label", "label"))
    )
    model.info = CheckpointInfo(
        label_names=names,
        task="snli" if kind == "pair" else "custom",
        columns=columns,
        max_seq_length=64,
    )
    return model.eval()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_minilm()
    quiet_libraries()
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def pair_checkpoint(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tdmixup.model.classifier import load_tokenizer, record_temperature, save_classifier

    ckpt = tmp_path_factory.mktemp("pair") / "stage" / "checkpoint"
    save_classifier(_classifier(tiny_dir, "pair", 3), load_tokenizer(str(tiny_dir)), ckpt)
    record_temperature(ckpt, T, {"set": "dev", "n": 16, "source": "test"})
    return ckpt


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    cols = snli_columns(40)
    return list(zip(cols["text_a"], cols["text_b"], strict=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- checkpoint metadata ------------------------------------------------------------------------
def test_checkpoint_records_labels_columns_and_temperature(pair_checkpoint: Path) -> None:
    from tdmixup.model.classifier import load_classifier

    meta = json.loads((pair_checkpoint / "classifier.json").read_text())
    assert meta["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}
    assert meta["label2id"]["contradiction"] == 2 and meta["kind"] == "pair"
    assert meta["columns"]["text_b"] == "sentence2" and meta["temperature"] == T
    assert meta["temperature_fitted_on"]["n"] == 16
    model, _ = load_classifier(pair_checkpoint)
    assert model.info.label_names == SNLI_LABELS and model.info.temperature == T
    assert dict(model.info.columns)["label"] == "gold_label"


def test_an_old_checkpoint_loads_with_a_warning(
    pair_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from tdmixup.model.classifier import load_classifier

    old = tmp_path / "stage" / "checkpoint"
    shutil.copytree(pair_checkpoint, old)
    meta = json.loads((old / "classifier.json").read_text())
    (old / "classifier.json").write_text(
        json.dumps({k: meta[k] for k in ("kind", "num_labels", "dropout")})
    )
    (old.parent / "metrics.json").write_text(json.dumps({"temperature": 2.5, "sets": {}}))
    with caplog.at_level(logging.WARNING, logger="tdmixup.model.classifier"):
        model, _ = load_classifier(old)
    assert model.info.label_names == ("0", "1", "2") and model.info.temperature == 2.5
    assert "label names" in caplog.text and "metrics.json" in caplog.text


def test_label_names_that_disagree_are_refused() -> None:
    from tdmixup.model.classifier import CheckpointInfo, check_label_names

    info = CheckpointInfo(label_names=SNLI_LABELS)
    check_label_names(SNLI_LABELS, info, "ckpt")
    check_label_names((), info, "ckpt")
    with pytest.raises(ValueError, match="disagree with ckpt.*entailment,neutral,contradiction"):
        check_label_names(("entailment", "contradiction", "neutral"), info, "ckpt")


# --- TextClassifier -------------------------------------------------------------------------------
def test_predict_proba_is_calibrated_and_in_input_order(
    pair_checkpoint: Path, pairs: list[tuple[str, str]]
) -> None:
    from tdmixup.inference import TextClassifier

    clf = TextClassifier.from_checkpoint(pair_checkpoint, device="cpu")
    assert clf.label_names == SNLI_LABELS and clf.temperature == T
    one_by_one = np.concatenate([clf.predict_logits([p], batch_size=1) for p in pairs[:12]])
    batched = clf.predict_logits(pairs[:12], batch_size=5)  # length-sorted batches, padded
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    probs = clf.predict_proba(pairs[:12], batch_size=5)
    np.testing.assert_allclose(probs, _softmax(one_by_one / T), atol=1e-5)
    np.testing.assert_allclose(
        clf.predict_proba(pairs[:12], temperature=False), _softmax(one_by_one), atol=1e-5
    )
    assert not np.allclose(probs, _softmax(one_by_one), atol=1e-3)  # T changed something
    assert clf.predict(pairs[:12]) == [SNLI_LABELS[i] for i in one_by_one.argmax(axis=1)]
    assert clf.predict_proba(pairs[0]).shape == (1, 3)  # one pair
    with pytest.raises(ValueError, match=r"input 1: .*\(text_a, text_b\) pairs"):
        clf.predict_proba([pairs[0], "a lone string"])

    from tdmixup.inference.classifier import normalise_items

    assert normalise_items(["one text", "another"], "single") == ["one text", "another"]
    assert normalise_items("one text", "single") == ["one text"]
    with pytest.raises(ValueError, match="input 0: .* strings"):
        normalise_items([pairs[0]], "single")


def test_multiple_choice_predicts_and_exports(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    from tdmixup.inference import TextClassifier, export_classifier
    from tdmixup.model.classifier import load_tokenizer, record_temperature, save_classifier

    ckpt = tmp_path / "stage" / "checkpoint"
    save_classifier(
        _classifier(tiny_dir, "multiple_choice", 4), load_tokenizer(str(tiny_dir)), ckpt
    )
    record_temperature(ckpt, 0.8, {"set": "dev", "n": 8})
    cols = snli_columns(12)
    items = [(cols["text_a"][i], cols["text_b"][i : i + 4]) for i in range(6)]
    clf = TextClassifier.from_checkpoint(ckpt, device="cpu")
    probs = clf.predict_proba(items, batch_size=4)
    assert probs.shape == (6, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="multiple_choice"):
        clf.predict_proba([("a", "b")])
    out = export_classifier(ckpt, tmp_path / "mc")
    model = AutoModelForMultipleChoice.from_pretrained(out, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ctx = [c for c, ends in items for _ in ends]
    enc = tok(ctx, [e for _, ends in items for e in ends], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**{k: v.view(6, 4, -1) for k, v in enc.items()}).logits
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), probs, atol=1e-4)


# --- export ---------------------------------------------------------------------------------------
def test_export_loads_in_transformers_and_pipeline_with_the_same_probabilities(
    pair_checkpoint: Path, pairs: list[tuple[str, str]], tmp_path: Path
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from tdmixup.inference import TextClassifier, export_classifier
    from tdmixup.model.classifier import load_classifier

    out = export_classifier(pair_checkpoint, tmp_path / "exported")
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_tdmixup.py", "README.md"} <= names
    assert "tokenizer.json" in names and not any(n.endswith(".bin") for n in names)
    expected = TextClassifier.from_checkpoint(pair_checkpoint, device="cpu").predict_proba(pairs)

    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    assert model.config.id2label == dict(enumerate(SNLI_LABELS))
    assert model.config.tdmixup_temperature == T
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        got = torch.softmax(model(**enc).logits, -1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)

    pipe = pipeline("text-classification", model=str(out), top_k=None, trust_remote_code=True)
    rows = pipe([{"text": a, "text_pair": b} for a, b in pairs[:8]])
    from_pipe = np.array(
        [[{d["label"]: d["score"] for d in r}[n] for n in SNLI_LABELS] for r in rows]
    )
    np.testing.assert_allclose(from_pipe, expected[:8], atol=1e-4)

    raw, _ = load_classifier(pair_checkpoint)  # the raw head is T · exported head
    weights = load_file(str(out / "model.safetensors"))
    torch.testing.assert_close(
        weights["classifier.weight"] * T, raw.head.weight, atol=1e-5, rtol=1e-5
    )
    encoder = getattr(model, model.config.tdmixup_encoder_prefix)  # the fine-tuned encoder
    torch.testing.assert_close(
        encoder.embeddings.word_embeddings.weight, raw.encoder.embeddings.word_embeddings.weight
    )
    again = TextClassifier.from_pretrained(out, device="cpu")
    np.testing.assert_allclose(again.predict_proba(pairs), expected, atol=1e-5)
    assert again.temperature == T and again.label_names == SNLI_LABELS


def test_export_without_remote_code_fails_and_0_3_0_folders_still_load(
    pair_checkpoint: Path,
    pairs: list[tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stock loader would build BertForSequenceClassification with a random pooler (wrong
    probabilities): the exported config's model_type makes every one of them raise instead."""
    from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

    from tdmixup.inference import TextClassifier, export_classifier

    out = export_classifier(pair_checkpoint, tmp_path / "exported")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "tdmixup" and config["tdmixup_encoder_type"] == "bert"
    for load in (
        lambda: AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=False),
        lambda: AutoModel.from_pretrained(out, trust_remote_code=False),
        lambda: pipeline("text-classification", model=str(out), trust_remote_code=False),
    ):
        with pytest.raises(ValueError, match="tdmixup|trust_remote_code"):
            load()
    monkeypatch.setattr("builtins.input", lambda *_: "n")  # the default: asks, the user says no
    with pytest.raises(ValueError):
        AutoModelForSequenceClassification.from_pretrained(out)

    expected = TextClassifier.from_checkpoint(pair_checkpoint, device="cpu").predict_proba(pairs)
    old = dict(config, model_type=config["tdmixup_encoder_type"])  # as tdmixup 0.3.0 wrote it
    del old["tdmixup_encoder_type"]
    old["auto_map"] = {k: v for k, v in old["auto_map"].items() if k != "AutoConfig"}
    (out / "config.json").write_text(json.dumps(old))
    again = TextClassifier.from_pretrained(out, device="cpu")
    np.testing.assert_allclose(again.predict_proba(pairs), expected, atol=1e-5)


# --- the commands ---------------------------------------------------------------------
def readme_use_commands() -> list[list[str]]:
    """The ``tdmixup`` lines under ``# use the trained classifier`` in
    docs/guides/use-the-classifier.md."""
    text = (REPO / "docs" / "guides" / "use-the-classifier.md").read_text()
    text = text.split("# use the trained classifier", 1)[1]
    lines = text.split("```", 1)[0].splitlines()
    return [shlex.split(line.split("  #", 1)[0]) for line in lines if line.startswith("tdmixup ")]


class _FakeHub:
    """The Hub's HTTP API for create_repo + upload_folder (regular uploads), recording the
    upload's requests (not the client's own agent-registry lookup, which depends on its cache)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.card_metadata = ""

    def handler(self, request: Any) -> Any:
        import httpx2

        path = request.url.path
        if path.endswith("/api/agent-harnesses"):  # huggingface_hub >= 2.5 asks once a day
            return httpx2.Response(200, json={"standardEnvVars": [], "harnesses": {}})
        self.requests.append(request)
        if path.endswith("/api/repos/create"):
            return httpx2.Response(200, json={"url": "https://huggingface.co/you/snli-td"})
        if path.endswith("/api/validate-yaml"):  # the model card's metadata
            self.card_metadata = json.loads(request.content)["content"]
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx2.Response(
                200,
                json={
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                },
            )
        if "/commit/" in path:
            return httpx2.Response(
                200,
                json={
                    "commitUrl": "https://huggingface.co/you/snli-td/commit/abc",
                    "commitOid": "abc",
                },
            )
        return httpx2.Response(404, json={"error": f"unexpected {request.method} {path}"})


def test_readme_commands_train_predict_export_and_push(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpx2 = pytest.importorskip(
        "httpx2", reason="the mocked Hub hooks into huggingface_hub >= 2's HTTP client (httpx2)"
    )
    from huggingface_hub.utils import _http

    from tdmixup.cli.commands import main

    commands = readme_use_commands()
    assert [c[1] for c in commands] == ["predict", "predict", "export", "export"]
    monkeypatch.chdir(tmp_path)
    sizes = ["--train-size", "32", "--dev-size", "16", "--test-size", "16", "--epochs", "1"]
    small = [*sizes, "--batch-size", "8", "--max-seq-length", "64", "--model", str(tiny_dir)]
    assert (
        main(["train", "--task", "snli", "--strategy", "none", "--output-dir", "runs/td", *small])
        == 0
    )
    meta = json.loads(Path("runs/td/checkpoint/classifier.json").read_text())
    done = json.loads(Path("runs/td/done.json").read_text())
    assert meta["temperature"] == done["metrics"]["temperature"]  # written by the training stage
    assert meta["temperature_fitted_on"]["n"] == 16 and meta["id2label"]["0"] == "entailment"

    cols = snli_columns(30, skip=200)
    rows = [
        {"sentence1": a, "sentence2": b, **({"gold_label": SNLI_LABELS[y]} if i % 3 else {})}
        for i, (a, b, y) in enumerate(
            zip(cols["text_a"], cols["text_b"], cols["label"], strict=True)
        )
    ]
    Path("new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    token = "hf_test_token_never_on_disk"
    monkeypatch.setenv("HF_TOKEN", token)
    hub = _FakeHub()
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: False)
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handler)))
    _http.close_session()
    try:
        for argv in commands:
            assert main(argv[1:]) == 0, argv
    finally:
        _http.set_client_factory(_http.default_client_factory)
        _http.close_session()
    printed = capsys.readouterr().out
    assert "20 labelled: accuracy" in printed and "uploaded → https://huggingface.co/" in printed

    import pandas as pd

    calibrated = pd.read_csv("predictions.csv")
    raw = pd.read_json("raw.jsonl", lines=True)
    assert list(calibrated.columns[:3]) == ["sentence1", "sentence2", "gold_label"]  # as written
    assert calibrated["sentence2"].tolist() == cols["text_b"]
    assert list(raw.columns[:3]) == ["sentence1", "sentence2", "gold_label"]
    probs = calibrated[[f"prob_{n}" for n in SNLI_LABELS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (calibrated["prediction"] == [SNLI_LABELS[i] for i in probs.argmax(axis=1)]).all()
    assert calibrated["gold_label"].isna().sum() == 10
    z = np.log(raw[[f"prob_{n}" for n in SNLI_LABELS]].to_numpy())
    np.testing.assert_allclose(probs, _softmax(z / meta["temperature"]), atol=1e-4)

    from transformers import pipeline

    pipe = pipeline(
        "text-classification", model="exported/snli-td", top_k=None, trust_remote_code=True
    )
    out = pipe([{"text": r["sentence1"], "text_pair": r["sentence2"]} for r in rows[:6]])
    from_pipe = np.array(
        [[{d["label"]: d["score"] for d in r}[n] for n in SNLI_LABELS] for r in out]
    )
    np.testing.assert_allclose(from_pipe, probs[:6], atol=1e-4)

    paths = [r.url.path for r in hub.requests]
    assert paths[0] == "/api/repos/create" and any("/commit/main" in p for p in paths)
    assert all(r.headers["authorization"] == f"Bearer {token}" for r in hub.requests)
    assert "model-index" in hub.card_metadata
    committed = b"".join(r.content for r in hub.requests if "/commit/" in r.url.path)
    assert b"model.safetensors" in committed and b"modeling_tdmixup.py" in committed
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    assert not any(token.encode() in p.read_bytes() for p in written)
    card = Path("exported/snli-td/README.md").read_text()
    assert 'from_pretrained("you/snli-td", trust_remote_code=True)' in card


def test_bad_input_gets_one_line(
    pair_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdmixup.cli.commands import main

    good = tmp_path / "in.csv"
    good.write_text("sentence1,sentence2\nA dog runs.,An animal moves.\nA cat sits.,\n")
    base = ["predict", "--checkpoint", str(pair_checkpoint), "--input", str(good)]
    cases = [
        (
            [*base, "--output", str(tmp_path / "o.csv")],
            "in.csv, row 3, field 'sentence2': empty text",
        ),
        ([*base, "--output", str(tmp_path / "o.xlsx")], "unknown format .xlsx"),
        (
            [*base, "--output", str(tmp_path / "o.csv"), "--column", "text_a=premise"],
            "field 'premise': column 'premise' not found",
        ),
        (
            [*base, "--output", str(tmp_path / "o.csv"), "--label-names", "a,b,c"],
            "--label-names a,b,c disagree",
        ),
        (
            [
                "predict",
                "--checkpoint",
                str(pair_checkpoint),
                "--input",
                "nope.csv",
                "--output",
                "o.csv",
            ],
            "--input nope.csv: file not found",
        ),
        (
            [
                "export",
                "--checkpoint",
                str(pair_checkpoint),
                "--output-dir",
                str(tmp_path / "e"),
                "--push-to-hub",
                "no-owner",
            ],
            "expected a repository id OWNER/NAME",
        ),
    ]
    evaluate = ["evaluate", "--checkpoint", str(pair_checkpoint), "--task", "snli"]
    cases.append(([*evaluate, "--label-names", "a,b,c"], "--label-names a,b,c disagree"))
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(err) == 1 and expected in err[0], (argv, err)
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "e").exists()


def test_predictions_keep_each_input_row_as_written(
    pair_checkpoint: Path, pairs: list[tuple[str, str]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The output is the user's own rows (every column, also unmapped and nested ones, values as
    written) with the prediction columns after them; a column of the same name as one of those
    (a file predicted before) is replaced, with a warning naming it."""
    import pandas as pd

    from tdmixup.cli.commands import main

    rows = [
        {"id": 100 + i, "sentence1": a, "sentence2": b, "meta": {"source": "web", "n": i},
         "prediction": "stale", "note": None if i == 1 else f"n{i}"}
        for i, (a, b) in enumerate(pairs[:4])
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    base = ["predict", "--checkpoint", str(pair_checkpoint), "--input", str(source)]
    with caplog.at_level(logging.WARNING, "tdmixup.inference"):
        assert main([*base, "--output", str(out)]) == 0
    assert "its column prediction replaced by this prediction's" in caplog.text
    got = [json.loads(line) for line in out.read_text().splitlines()]
    names = [f"prob_{n}" for n in SNLI_LABELS]
    assert list(got[0]) == ["id", "sentence1", "sentence2", "meta.source", "meta.n", "note",
                            "prediction", "probability", *names]  # fmt: skip
    assert [r["id"] for r in got] == [100, 101, 102, 103]  # ints stay ints
    assert [r["meta.n"] for r in got] == [0, 1, 2, 3] and got[1]["note"] is None
    assert all(r["prediction"] in SNLI_LABELS for r in got)
    csv_out = tmp_path / "out.csv"
    assert main(["predict", "--checkpoint", str(pair_checkpoint), "--input", str(out),
                 "--output", str(csv_out)]) == 0  # fmt: skip
    again = pd.read_csv(csv_out)
    assert list(again.columns) == list(got[0])  # re-predicting replaces, never duplicates
    np.testing.assert_allclose(again[names].to_numpy(), [[r[n] for n in names] for r in got])
    tsv = tmp_path / "in.tsv"  # TSV is read unquoted, so it is written unquoted: cells as read
    tsv.write_text('sentence1\tsentence2\nShe said "hi".\tA "quoted" reply.\n')
    assert main([*base[:-1], str(tsv), "--output", str(tmp_path / "o.tsv")]) == 0
    lines = (tmp_path / "o.tsv").read_text().splitlines()
    assert lines[1].split("\t")[:2] == ['She said "hi".', 'A "quoted" reply.']
    assert main([*base[:-1], str(tmp_path / "o.tsv"), "--output", str(tmp_path / "o2.tsv")]) == 0
    assert (tmp_path / "o2.tsv").read_text().splitlines()[1].split("\t")[:2] == [
        'She said "hi".', 'A "quoted" reply.'
    ]  # fmt: skip
    tabbed = tmp_path / "tab.jsonl"  # a tab inside a cell cannot be written as TSV: refused first
    tabbed.write_text(json.dumps({"sentence1": "a\tb", "sentence2": "c"}) + "\n")
    capsys.readouterr()
    assert main([*base[:-1], str(tabbed), "--output", str(tmp_path / "t.tsv")]) == 2
    assert "t.tsv: row 1, column 'sentence1' holds a tab or line break" in capsys.readouterr().err
    assert not (tmp_path / "t.tsv").exists()


def test_predict_table_keeps_the_rows_and_adds_the_cli_columns(
    pair_checkpoint: Path, pairs: list[tuple[str, str]]
) -> None:
    """``TextClassifier.predict_table`` on a DataFrame (its index kept), a Dataset or a list of
    dicts: the checkpoint's columns by default or the ones named, the same probabilities as
    ``predict_proba``, and one-line errors naming the row and column."""
    import datasets
    import pandas as pd

    from tdmixup.data.schema import DataError
    from tdmixup.inference import TextClassifier

    clf = TextClassifier.from_checkpoint(pair_checkpoint, device="cpu")
    a, b = zip(*pairs[:5], strict=True)
    frame = pd.DataFrame({"sentence1": a, "sentence2": b, "source": list("vwxyz")},
                         index=[50, 40, 30, 20, 10])  # fmt: skip
    table = clf.predict_table(frame)
    names = [f"prob_{n}" for n in SNLI_LABELS]
    assert list(table.columns) == ["sentence1", "sentence2", "source", "prediction",
                                   "probability", *names]  # fmt: skip
    assert table.index.tolist() == [50, 40, 30, 20, 10] and table["source"].tolist() == list(
        "vwxyz"
    )
    expected = clf.predict_proba(list(zip(a, b, strict=True)))
    np.testing.assert_allclose(table[names].to_numpy(), expected, atol=1e-6)
    assert table["prediction"].tolist() == [SNLI_LABELS[i] for i in expected.argmax(1)]
    raw = clf.predict_table(datasets.Dataset.from_pandas(frame, preserve_index=False),
                            temperature=False)  # fmt: skip
    np.testing.assert_allclose(
        raw[names].to_numpy(),
        clf.predict_proba(list(zip(a, b, strict=True)), temperature=False),
        atol=1e-6,
    )
    renamed = [{"p": x, "h": y} for x, y in zip(a, b, strict=True)]
    named = clf.predict_table(renamed, text="p", text_pair="h")
    np.testing.assert_allclose(named[names].to_numpy(), expected, atol=1e-6)
    with pytest.raises(
        DataError, match=r"field 'sentence1': column 'sentence1' not found \(found: p, h\)"
    ):
        clf.predict_table(renamed)
    empty = clf.predict_table(frame.iloc[:0])
    assert list(empty.columns) == list(table.columns) and len(empty) == 0
    with pytest.raises(DataError, match="a DatasetDict .* holds splits .*'train'"):
        clf.predict_table(datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame)}))
    renamed[2]["h"] = " "
    with pytest.raises(DataError, match="row 2, field 'h': empty text"):
        clf.predict_table(renamed, text="p", text_pair="h")


# --- model card -----------------------------------------------------------------------
def test_model_card_reports_the_run_folder(pair_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    import yaml

    from tdmixup.inference import export_classifier

    run = tmp_path / "run"
    stage = run / "stage4_tdmixup"
    shutil.copytree(pair_checkpoint, stage / "checkpoint")
    config = {
        "data": {"task": "snli", "train_size": 900, "max_seq_length": 64},
        "model": {"name_or_path": "offline:all-MiniLM-L6-v2"},
        "train": {"epochs": 3, "learning_rate": 2e-5, "batch_size": 16, "seed": 1},
        "mixup": {"strategy": "tdmixup", "alpha": 0.4, "mix_at": "cls"},
    }
    (run / "config.json").write_text(json.dumps({"config": config}))
    sets = {
        "snli_test": {
            "n": 321,
            "accuracy": 0.8123,
            "ece": 0.0731,
            "nll": 0.51,
            "ece_scaled": 0.0212,
            "nll_scaled": 0.47,
        },
        "mnli_ood": {
            "n": 123,
            "accuracy": 0.6044,
            "ece": 0.2011,
            "nll": 1.1,
            "ece_scaled": 0.0998,
            "nll_scaled": 0.93,
        },
    }
    (stage / "done.json").write_text(
        json.dumps(
            {
                "strategy": "tdmixup",
                "train_sizes": [241, 297],
                "train_class_counts": [{"entailment": 80, "neutral": 81, "contradiction": 80}],
                "metrics": {"temperature": T, "sets": sets},
            }
        )
    )
    (run / "datamap").mkdir()
    (run / "datamap" / "done.json").write_text(
        json.dumps(
            {
                "n": 900,
                "regions": {"easy": 297, "ambiguous": 297, "hard": 297},
                "stratify_regions": True,
                "class_counts": {"easy": {"entailment": 99, "neutral": 99, "contradiction": 99}},
            }
        )
    )
    (run / "aum_easy").mkdir()
    (run / "aum_easy" / "summary.json").write_text(
        json.dumps(
            {
                "n": 297,
                "n_flagged": 56,
                "n_kept": 241,
                "procedure": "two_pass",
                "percentile": 80.0,
                "class_counts": {"kept": {"entailment": 70, "neutral": 90, "contradiction": 81}},
            }
        )
    )
    out = export_classifier(stage / "checkpoint", tmp_path / "exported")
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (
        meta["datasets"] == ["stanfordnlp/snli"] and meta["pipeline_tag"] == "text-classification"
    )
    results = meta["model-index"][0]["results"]
    assert [r["dataset"]["name"] for r in results] == ["snli_test", "mnli_ood"]
    assert results[0]["metrics"][0] == {"type": "accuracy", "value": 0.8123, "name": "accuracy"}
    for needle in (
        "| snli_test | 321 | 81.23 | 7.31 | 2.12 |",
        "| mnli_ood | 123 | 60.44 | 20.11 | 9.98 |",
        "T = 1.70",
        "training rows: 241 + 297",
        "| easy | 297 | entailment 99, neutral 99",
        "56 flagged as likely mislabeled, 241 kept",
        "strategy: `tdmixup`",
        "trust_remote_code=True",
        "AutoModelForSequenceClassification",
        "`text_b` ← `sentence2`",
        "TDMixUp (Park & Caragea, NAACL 2022: MixUp between easy and ambiguous",
        "with AUM-flagged samples removed",
        "- MixUp: alpha 0.4",
        "## Data map and AUM",
        "## Intended use and limitations",
        "fitted on the dev set (16 rows",
        "measured only on `snli_test`, `mnli_ood`",
        "`entailment`, `neutral`, `contradiction`",
    ):
        assert needle in card, needle
    assert "of train_size" not in card


def test_model_card_words_a_plain_checkpoint_by_its_strategy(
    pair_checkpoint: Path, tmp_path: Path
) -> None:
    """stage1_full (strategy none): no TDMixUp wording, no MixUp settings, no selection section,
    although the run folder has a data map and an AUM summary."""
    import shutil

    from tdmixup.inference.model_card import card_text, run_files
    from tdmixup.model.classifier import load_classifier

    run = tmp_path / "run"
    stage = run / "stage1_full"
    shutil.copytree(pair_checkpoint, stage / "checkpoint")
    config = {
        "data": {"task": "snli", "train_size": 1000, "max_seq_length": 64},
        "mixup": {"strategy": "tdmixup", "alpha": 0.4},
    }
    (run / "config.json").write_text(json.dumps({"config": config}))
    (stage / "done.json").write_text(json.dumps({"strategy": "none", "train_sizes": [190]}))
    for sub, name in (("datamap", "done.json"), ("aum_easy", "summary.json")):
        (run / sub).mkdir()
        (run / sub / name).write_text(json.dumps({"n": 190, "n_flagged": 3}))
    model, _ = load_classifier(stage / "checkpoint")
    card = card_text(model, run_files(stage / "checkpoint"))
    assert "classifier fine-tuned with plain cross-entropy on all training rows" in card
    for absent in ("TDMixUp", "AUM-flagged", "MixUp:", "alpha", "## Data map and AUM", "flagged"):
        assert absent not in card, absent
    assert "- training rows: 190\n  - 16 more rows of the training file were held out" in card
    assert "`train_size` setting (an upper bound): 1000" in card
    assert "This stage was not evaluated" in card and "not measured on any test set" in card


@pytest.mark.slow
def test_predict_under_two_processes_writes_every_row_once_in_order(
    pair_checkpoint: Path, pairs: list[tuple[str, str]], tmp_path: Path
) -> None:
    import os
    import subprocess

    import pandas as pd

    from tdmixup.inference import TextClassifier

    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip(f"torchrun not found beside {sys.executable}")
    rows = pairs[:23]  # odd: the processes get 12 and 11 rows
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"sentence1": a, "sentence2": b}) + "\n" for a, b in rows))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    args = ["--checkpoint", str(pair_checkpoint), "--input", str(source), "--batch-size", "4"]
    out = tmp_path / "out.csv"
    done = subprocess.run(
        [
            str(launcher),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "tdmixup.cli",
            "predict",
        ]
        + [*args, "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("predicted 23 rows") == 1  # the main process alone reports and writes
    table = pd.read_csv(out)
    assert table["sentence2"].tolist() == [b for _, b in rows]  # in input order
    expected = TextClassifier.from_checkpoint(pair_checkpoint, device="cpu").predict_proba(rows)
    got = table[[f"prob_{n}" for n in SNLI_LABELS]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
