"""Back-translation augmentation (tdmixup.strategies.backtranslation) with tiny random Marian
models.

The fixture builds two offline Marian "translators" (en→de, de→en) in a temp folder: a
character-level sentencepiece model trained on a few sentences (``source.spm`` = ``target.spm``),
a ``vocab.json`` over its pieces, and a randomly initialised ``MarianMTModel`` with d_model 16
and one layer each side. Their output is gibberish, which is all these tests need.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("sentencepiece")
datasets = pytest.importorskip("datasets")

from tdmixup.data.schema import DataError  # noqa: E402
from tdmixup.model.classifier import ModelLoadError  # noqa: E402
from tdmixup.strategies import backtranslation as bt  # noqa: E402
from tdmixup.strategies.backtranslation import (  # noqa: E402
    AUGMENTED_FROM,
    BackTranslationConfig,
    augment_with_back_translation,
    back_translate,
)

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Two dogs run through the park.",
    "Ein Mann spielt Gitarre auf der Bühne.",
    "Zwei Hunde laufen durch den Park.",
    "The woman reads a book, quietly.",
]


def _tiny_marian(folder: Path, spm_model: Path, seed: int) -> None:
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True)
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = {"</s>": 0, "<unk>": 1, "<pad>": 2}
    for piece in (sp.id_to_piece(i) for i in range(sp.get_piece_size())):
        vocab.setdefault(piece, len(vocab))
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(spm_model.read_bytes())
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = MarianTokenizer(
        str(folder / "source.spm"),
        str(folder / "target.spm"),
        str(folder / "vocab.json"),
        model_max_length=64,
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=2,
        eos_token_id=0,
        decoder_start_token_id=2,
        forced_eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias[0, 0] = -4.0  # make </s> rare so outputs are not empty
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run faster on one thread than fighting over shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> BackTranslationConfig:
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("marian")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4),
        model_prefix=str(root / "sp"),
        vocab_size=40,
        model_type="char",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=1,
        unk_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    _tiny_marian(root / "en-de", root / "sp.model", seed=0)
    _tiny_marian(root / "de-en", root / "sp.model", seed=1)
    return BackTranslationConfig(
        forward_model=str(root / "en-de"),
        backward_model=str(root / "de-en"),
        max_new_tokens=6,
        batch_size=4,
        seed=0,
        device="cpu",
    )


def _pair_dataset():
    return datasets.Dataset.from_dict(
        {
            "sample_id": [0, 3, 7],
            "text_a": [SENTENCES[0], SENTENCES[0], SENTENCES[1]],
            "text_b": ["A person makes music.", "Nobody is there.", "Animals are outside."],
            "label": [0, 2, 1],
        }
    )


def _mc_dataset():
    return datasets.Dataset.from_dict(
        {
            "sample_id": [0, 1],
            "context": [SENTENCES[4], SENTENCES[1]],
            "endings": [
                ["She smiles.", "She runs.", "It rains.", "He sleeps."],
                ["They bark.", "They sit.", "They fly.", "They swim."],
            ],
            "label": [0, 1],
        }
    )


def _no_models(monkeypatch) -> None:
    def fail(*_args, **_kwargs):
        raise AssertionError("a translation model was loaded")

    monkeypatch.setattr(bt, "_load_translator", fail)


def test_back_translate_returns_one_string_per_text_and_copy(tiny_config):
    texts = SENTENCES[:3] + ["  "]
    out = back_translate(texts, replace(tiny_config, copies=2), progress=False)
    assert len(out) == 2 * len(texts)
    assert all(isinstance(t, str) for t in out)
    assert out[3] == out[7] == "  "  # blank texts are not translated
    assert any(t.strip() for t in out)
    assert back_translate([], tiny_config) == []


def test_same_seed_same_output_other_seed_differs(tiny_config):
    first = back_translate(SENTENCES, tiny_config, progress=False)
    assert back_translate(SENTENCES, tiny_config, progress=False) == first
    assert back_translate(SENTENCES, replace(tiny_config, seed=1), progress=False) != first


def test_pair_augmentation_ids_columns_and_cache(tiny_config, tmp_path, monkeypatch):
    data = _pair_dataset()
    out = augment_with_back_translation(
        data, "pair", tiny_config, cache_dir=tmp_path, progress=False
    )
    assert len(out) == 2 * len(data)
    assert out.column_names == [*data.column_names, AUGMENTED_FROM]
    original, copy = out.select(range(3)), out.select(range(3, 6))
    assert original.remove_columns(AUGMENTED_FROM).to_list() == data.to_list()
    assert list(original[AUGMENTED_FROM]) == [-1, -1, -1]
    assert list(copy["sample_id"]) == [8, 11, 15]  # id + (max_id + 1)
    assert not set(copy["sample_id"]) & set(data["sample_id"])
    assert list(copy[AUGMENTED_FROM]) == list(data["sample_id"])
    assert list(copy["label"]) == list(data["label"])
    assert copy["text_a"][0] == copy["text_a"][1]  # a shared premise is translated once
    assert list(copy["text_b"]) != list(data["text_b"])  # both sides are translated
    assert len(list(tmp_path.glob("backtranslation-*.parquet"))) == 1

    _no_models(monkeypatch)
    cached = augment_with_back_translation(data, "pair", tiny_config, cache_dir=tmp_path)
    assert cached.to_list() == out.to_list()
    assert cached.features == out.features
    with pytest.raises(AssertionError, match="model was loaded"):
        augment_with_back_translation(
            data, "pair", replace(tiny_config, seed=5), cache_dir=tmp_path
        )


def test_multiple_choice_translates_context_only(tiny_config, tmp_path):
    data = _mc_dataset()
    out = augment_with_back_translation(
        data, "multiple_choice", replace(tiny_config, copies=2), cache_dir=tmp_path, progress=False
    )
    assert len(out) == 3 * len(data)
    assert list(out["sample_id"]) == [0, 1, 2, 3, 4, 5]
    assert list(out[AUGMENTED_FROM]) == [-1, -1, 0, 1, 0, 1]
    assert list(out["endings"])[2:] == list(data["endings"]) * 2
    assert list(out["label"])[2:] == list(data["label"]) * 2
    context = list(out["context"])
    assert context[2:4] != list(data["context"]) and context[2:4] != context[4:]
    assert out.features["endings"] == data.features["endings"]


def test_missing_local_model_fails_with_clear_message(tiny_config, tmp_path):
    config = replace(tiny_config, forward_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="does not exist.*hub"):
        back_translate(["Hello."], config, progress=False)


def test_offline_hub_name_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = BackTranslationConfig(forward_model="tdmixup-tests/no-such-opus-mt", device="cpu")
    with pytest.raises(
        ModelLoadError, match="not in the local Hugging Face cache.*need the Hugging Face hub"
    ):
        back_translate(["Hello."], config, progress=False)


def test_bad_inputs_are_rejected(tiny_config, tmp_path):
    with pytest.raises(DataError, match="missing"):
        augment_with_back_translation(
            _pair_dataset(), "multiple_choice", tiny_config, cache_dir=tmp_path
        )
    dup = _pair_dataset().map(lambda row: {"sample_id": 1})
    with pytest.raises(DataError, match="unique"):
        augment_with_back_translation(dup, "pair", tiny_config, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="temperature"):
        BackTranslationConfig(temperature=0.0)
    with pytest.raises(ValueError, match="copies"):
        BackTranslationConfig(copies=0)
    with pytest.raises(TypeError, match="strings"):
        back_translate(["ok", None], tiny_config)  # type: ignore[list-item]


def test_empty_dataset_needs_no_model(tiny_config, tmp_path, monkeypatch):
    _no_models(monkeypatch)
    out = augment_with_back_translation(
        _pair_dataset().select([]), "pair", tiny_config, cache_dir=tmp_path
    )
    assert len(out) == 0 and AUGMENTED_FROM in out.column_names


# --- scale: chunks, resume, several processes, one cache for every seed (issue 21, finding 1) ---
class _FakeTranslator:
    """Stands in for the Marian models: ``text -> "<direction><seed % 97>:text"``; counts the
    texts translated, and raises after ``fail_after`` calls (a kill in the middle of a run)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_after = fail_after

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(bt, "_load_translator", lambda name, device: name)
        monkeypatch.setattr(bt, "_translate", self.translate)

    def translate(self, model, texts, config, seed, bar):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls.append((model, len(texts)))
        tag = "d" if "de" in model.split("-")[-1] else "e"
        return [f"{tag}{seed % 97}:{t}" for t in texts]

    @property
    def texts(self) -> int:
        return sum(n for _, n in self.calls)


def _many_pairs(n: int = 11):
    return datasets.Dataset.from_dict(
        {
            "sample_id": list(range(n)),
            "text_a": [f"premise {i // 2}" for i in range(n)],  # shared premises
            "text_b": [f"hypothesis {i}" for i in range(n)],
            "label": [i % 3 for i in range(n)],
        }
    )


FAKE = BackTranslationConfig(forward_model="en-de", backward_model="de-en", device="cpu")


def test_a_killed_translation_keeps_its_chunks_and_a_rerun_translates_only_the_rest(
    tmp_path, monkeypatch
):
    """The old cache was written only at the end: a kill lost everything. Now every chunk of
    CHUNK_TEXTS distinct texts is written when done; a rerun resumes, and the result equals an
    uninterrupted run's (chunk seeds do not depend on where a run stopped)."""
    monkeypatch.setattr(bt, "CHUNK_TEXTS", 4)
    data = _many_pairs()  # 6 premises + 11 hypotheses = 17 distinct texts: 5 chunks
    reference = _FakeTranslator()
    reference.install(monkeypatch)
    want = augment_with_back_translation(data, "pair", FAKE, cache_dir=tmp_path / "a")
    assert reference.texts == 2 * 17

    killed = _FakeTranslator(fail_after=5)  # 2 chunks (2 directions each) and a half
    killed.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        augment_with_back_translation(data, "pair", FAKE, cache_dir=tmp_path / "b")
    kept = sorted((tmp_path / "b").glob("*.parts/chunk-*.json"))
    assert [p.name for p in kept] == ["chunk-000000.json", "chunk-000001.json"]
    assert not list((tmp_path / "b").glob("*.parquet"))

    rerun = _FakeTranslator()
    rerun.install(monkeypatch)
    got = augment_with_back_translation(data, "pair", FAKE, cache_dir=tmp_path / "b")
    assert rerun.texts == 2 * (17 - 8)  # only the three missing chunks
    assert got.to_list() == want.to_list()
    assert not list((tmp_path / "b").glob("*.parts"))  # chunks removed once the cache is whole


def test_processes_translate_their_own_chunks_and_agree_without_a_collective(tmp_path, monkeypatch):
    """Two processes (threads here; they share only the folder, as processes do): each
    translates every other chunk, process 0 assembles, both return the same set, equal to one
    process's. Nobody waits at a barrier: the waits watch files."""
    import threading

    monkeypatch.setattr(bt, "CHUNK_TEXTS", 3)
    data = _many_pairs()
    one = _FakeTranslator()
    one.install(monkeypatch)
    want = augment_with_back_translation(data, "pair", FAKE, cache_dir=tmp_path / "one")

    shared = _FakeTranslator()
    shared.install(monkeypatch)
    per_process: dict[int, list] = {}
    results: dict[int, object] = {}

    def run(rank: int) -> None:
        results[rank] = augment_with_back_translation(
            data,
            "pair",
            FAKE,
            cache_dir=tmp_path / "two",
            process_index=rank,
            num_processes=2,
            poll_s=0.05,
        )

    original = shared.translate

    def tagged(model, texts, config, seed, bar):
        rank = int(threading.current_thread().name[-1])
        per_process.setdefault(rank, []).append(len(texts))
        return original(model, texts, config, seed, bar)

    monkeypatch.setattr(bt, "_translate", tagged)
    threads = [threading.Thread(target=run, args=(r,), name=f"rank{r}") for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(results) == {0, 1}
    assert results[0].to_list() == results[1].to_list() == want.to_list()  # type: ignore[attr-defined]
    # 17 distinct texts in chunks of 3: chunks 0, 2, 4 (9 texts) and 1, 3, 5 (8 texts), 2 directions
    assert sum(per_process[0]) == 2 * 9 and sum(per_process[1]) == 2 * 8


def test_experiment_seeds_share_one_back_translation_cache(tmp_path, monkeypatch):
    """layout.py: the cache is shared by the seeds. The old row keyed it by the training seed,
    so five seeds translated ~1.1M texts five times; now seed 2 reads seed 1's cache."""
    from types import SimpleNamespace

    from tdmixup.data.schema import TaskSpec
    from tdmixup.run import experiments

    fake = _FakeTranslator()
    fake.install(monkeypatch)
    monkeypatch.setattr("tdmixup.data.collate.tokenize", lambda dataset, *a, **k: dataset)
    from contextlib import nullcontext

    accelerator = SimpleNamespace(
        process_index=0,
        num_processes=1,
        is_main_process=True,
        device="cpu",
        main_process_first=nullcontext,
    )

    def session(seed: int):
        config = SimpleNamespace(
            train=SimpleNamespace(seed=seed), data=SimpleNamespace(max_seq_length=64)
        )
        task = SimpleNamespace(train=_many_pairs(), spec=TaskSpec("snli", "pair", ("a", "b", "c")))
        return SimpleNamespace(
            accelerator=accelerator,
            task=task,
            config=config,
            tokenizer=None,
            run_dir=tmp_path / f"seed_{seed}",
        )

    first = experiments._backtranslated(session(1))
    translated = fake.texts
    second = experiments._backtranslated(session(2))
    assert translated > 0 and fake.texts == translated  # seed 2 translated nothing
    assert first.to_list() == second.to_list()
    assert len(list((tmp_path / "backtranslation_cache").glob("*.parquet"))) == 1


def test_single_sentence_translates_text_a(tiny_config, tmp_path):
    data = datasets.Dataset.from_dict(
        {"sample_id": [3, 7], "text_a": SENTENCES[:2], "label": [0, 1]}
    )
    out = augment_with_back_translation(
        data, "single", tiny_config, cache_dir=tmp_path, progress=False
    )
    assert out.column_names == ["sample_id", "text_a", "label", AUGMENTED_FROM]
    assert list(out["sample_id"]) == [3, 7, 11, 15] and list(out["label"]) == [0, 1, 0, 1]
    assert list(out[AUGMENTED_FROM]) == [-1, -1, 3, 7]
    assert list(out["text_a"])[:2] == SENTENCES[:2] and list(out["text_a"])[2:] != SENTENCES[:2]
    with pytest.raises(DataError, match="single dataset needs columns"):
        augment_with_back_translation(
            data.remove_columns("text_a"), "single", tiny_config, cache_dir=tmp_path
        )
