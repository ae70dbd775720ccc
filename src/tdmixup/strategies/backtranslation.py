"""Back-translation augmentation (Edunov et al., 2018): the paper's data-augmentation baseline.

Every training text is translated English → German → English with pre-trained translation
models (default: Marian ``Helsinki-NLP/opus-mt-en-de`` and ``opus-mt-de-en``), decoding by
unrestricted random sampling at temperature 0.9 (``top_k = 0``, one beam), as the paper's
footnote ("random sampling temperature 0.9"). The paraphrases are appended to the training set
as new rows; the pipeline then trains strategy ``"none"`` on the result.

What is translated:

* single-sentence tasks: ``text_a``;
* pair tasks: ``text_a`` and ``text_b`` (each distinct text once, so an SNLI premise shared by
  three hypotheses gets one paraphrase per copy);
* multiple choice: the ``context`` only. The endings (for SWAG ``sent2 + ending_k``) are kept
  verbatim: they are the answer candidates, and paraphrasing them four times per question would
  cost 4× the compute and could blur which ending is right.

The real models need the Hugging Face hub once (or local folders given as
``forward_model``/``backward_model``); offline, :func:`back_translate` fails at once with
:class:`~tdmixup.model.classifier.ModelLoadError`. Needs ``pip install 'tdmixup[backtranslation]'``
(``sentencepiece``, ``sacremoses``) for the Marian tokenizers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdmixup.core.config import _f
from tdmixup.core.runio import atomic_write_bytes, atomic_write_text
from tdmixup.data.schema import MC_COLUMNS, PAIR_COLUMNS, SINGLE_COLUMNS, DataError, TaskKind
from tdmixup.model.classifier import ModelLoadError, resolve_model_path

log = logging.getLogger("tdmixup.strategies.backtranslation")

AUGMENTED_FROM = "augmented_from"
"""Column of the augmented set: the ``sample_id`` a row paraphrases, ``-1`` for original rows."""

CACHE_VERSION = 2
CHUNK_TEXTS = 2048
"""Distinct texts per cache chunk: the unit of work that is sharded over processes, written
atomically when done and kept across a kill (minutes of GPU time each)."""


@dataclass(frozen=True)
class BackTranslationConfig:
    """How to back-translate (defaults: Edunov et al. 2018 as used by the paper)."""

    forward_model: str = _f(
        "Helsinki-NLP/opus-mt-en-de", "English→German model: hub name or local folder."
    )
    backward_model: str = _f(
        "Helsinki-NLP/opus-mt-de-en", "German→English model: hub name or local folder."
    )
    temperature: float = _f(0.9, "Sampling temperature (paper: 0.9).")
    do_sample: bool = _f(True, "Random sampling (True, paper) or greedy decoding (False).")
    top_k: int = _f(0, "Sample only from the k most likely tokens; 0 = unrestricted (paper).")
    max_new_tokens: int = _f(128, "Longest translation, in tokens.")
    batch_size: int = _f(32, "Texts per generate() call.")
    seed: int = _f(42, "Seed of the sampling; the same seed gives the same paraphrases.")
    copies: int = _f(1, "Paraphrases per training row.")
    device: str = _f("auto", "'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1', ...")

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("max_new_tokens", "batch_size", "copies"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = unrestricted), got {self.top_k}")


def back_translate(
    texts: Sequence[str], config: BackTranslationConfig, *, progress: bool = True
) -> list[str]:
    """Paraphrase ``texts`` by translating them to German and back.

    Args:
        texts: English strings. Blank strings are returned unchanged and not translated.
        config: models and decoding settings.
        progress: show a tqdm bar (counts texts over both directions and all copies).

    Returns:
        ``len(texts) * config.copies`` strings, copy-major: ``out[c * len(texts) + i]`` is copy
        ``c`` of ``texts[i]``. The same texts, config and batch size give the same output.

    Raises:
        ModelLoadError: a model is neither a local folder nor reachable (offline hub).
    """
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"back_translate() needs strings; texts[{bad[0]}] is {type(texts[bad[0]]).__name__}"
        )
    if not texts:
        return []
    from tqdm.auto import tqdm

    device = _device(config.device)
    forward = _load_translator(config.forward_model, device)
    backward = _load_translator(config.backward_model, device)
    out: list[str] = []
    with tqdm(
        total=2 * config.copies * len(texts),
        desc="back-translation",
        unit="text",
        disable=not progress,
    ) as bar:
        for copy in range(config.copies):
            german = _translate(forward, texts, config, _stage_seed(config.seed, copy, 0), bar)
            out.extend(_translate(backward, german, config, _stage_seed(config.seed, copy, 1), bar))
    return out


def augment_with_back_translation(
    dataset: Any,
    kind: TaskKind,
    config: BackTranslationConfig | None = None,
    *,
    cache_dir: str | Path,
    progress: bool = True,
    process_index: int = 0,
    num_processes: int = 1,
    poll_s: float = 2.0,
) -> Any:
    """The training set plus ``config.copies`` back-translated copies of every row.

    Original rows come first, unchanged, with ``augmented_from = -1``. Copy ``c`` (0-based) of
    the row with id ``i`` follows with ``sample_id = i + (c + 1) * (max_id + 1)`` (disjoint
    from the originals, and stable for the same input) and ``augmented_from = i``; its label
    and any other columns are the original's. See the module docstring for which fields change.

    The result is cached as ``cache_dir/backtranslation-<sha256[:16]>.parquet`` (written
    atomically), keyed by the models, decoding settings, sampling seed, task kind and every
    column of ``dataset``; a second call with the same inputs loads it without loading any model.

    Work is cut into chunks of :data:`CHUNK_TEXTS` distinct texts, each sampled with its own
    seed (so the output does not depend on the number of processes). Chunk ``c`` is translated
    by process ``c % num_processes`` and written as soon as it is done to
    ``backtranslation-<key>.parts/`` (atomically), so a killed run keeps its finished chunks and
    a rerun translates only the rest. Processes wait for each other by watching these files, not
    at a collective (a barrier held for hours trips NCCL's timeout): process 0 waits for every
    chunk, writes the cache and removes the chunks; the others wait for the cache. So the
    processes must share ``cache_dir`` (one output folder, see the README's multi-GPU section).

    Args:
        dataset: a :class:`datasets.Dataset` in the schema of :mod:`tdmixup.data.schema`.
        kind: ``"single"``, ``"pair"`` or ``"multiple_choice"``.
        config: back-translation settings (default: :class:`BackTranslationConfig`).
        cache_dir: folder of the cache files.
        progress: show a tqdm bar while translating.
        process_index, num_processes: this process and how many share the work (Accelerate's
            ``process_index`` and ``num_processes``); every process calls this function.
        poll_s: seconds between looks for the other processes' files.

    Returns:
        A :class:`datasets.Dataset` with ``len(dataset) * (1 + copies)`` rows and the column
        ``augmented_from`` (int64) added.
    """
    import datasets

    config = config or BackTranslationConfig()
    fields = _check_dataset(dataset, kind)
    key = _cache_key(dataset, kind, config)
    path = Path(cache_dir) / f"backtranslation-{key[:16]}.parquet"
    if path.exists():
        return _read_cache(path)
    features = dataset.features.copy()
    features[AUGMENTED_FROM] = datasets.Value("int64")
    n = len(dataset)
    original = dataset.add_column(AUGMENTED_FROM, np.full(n, -1, dtype=np.int64))  # int64
    ids = np.asarray(dataset["sample_id"], dtype=np.int64)
    columns = {name: list(dataset[name]) for name in dataset.column_names}
    unique = list(dict.fromkeys(t for f in fields for t in columns[f]))
    chunks = _ChunkStore(path.with_suffix(".parts"), len(unique))
    chunks.translate(unique, config, process_index, num_processes, progress=progress)
    if process_index != 0:  # process 0 assembles and writes the cache
        _wait_for(lambda: path.exists(), poll_s, f"{path} (written by process 0)")
        return _read_cache(path)
    _wait_for(chunks.all_done, poll_s, f"the chunks of the other processes in {chunks.folder}")
    paraphrases = chunks.read_all(config.copies)  # [copies][len(unique)]
    offset = int(ids.max()) + 1 if n else 0
    parts = [original]
    for copy in range(config.copies):
        lookup = dict(zip(unique, paraphrases[copy], strict=True))
        rows = dict(columns)
        rows.update({f: [lookup[t] for t in columns[f]] for f in fields})
        rows["sample_id"] = (ids + (copy + 1) * offset).tolist()
        rows[AUGMENTED_FROM] = ids.tolist()
        parts.append(datasets.Dataset.from_dict(rows, features=features))
    out = datasets.concatenate_datasets(parts)
    _write_cache(path, out, {"key": key, "kind": kind, "config": asdict(config)})
    shutil.rmtree(chunks.folder, ignore_errors=True)
    return out


class _ChunkStore:
    """The finished chunks of one cache entry: ``folder/chunk-<c>.json`` holds, per copy, the
    paraphrases of distinct texts ``c·CHUNK_TEXTS`` up to the next chunk's first."""

    def __init__(self, folder: Path, n_texts: int) -> None:
        self.folder = folder
        self.count = -(-n_texts // CHUNK_TEXTS)

    def path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:06d}.json"

    def missing(self) -> list[int]:
        return [c for c in range(self.count) if not self.path(c).exists()]

    def all_done(self) -> bool:
        return not self.missing()

    def translate(
        self,
        texts: list[str],
        config: BackTranslationConfig,
        process_index: int,
        num_processes: int,
        *,
        progress: bool,
    ) -> None:
        """Translate and write this process's missing chunks (models load only if any are)."""
        mine = [c for c in self.missing() if c % num_processes == process_index]
        if not mine:
            return
        from tqdm.auto import tqdm

        device = _device(config.device)
        forward = _load_translator(config.forward_model, device)
        backward = _load_translator(config.backward_model, device)
        sizes = [len(texts[c * CHUNK_TEXTS : (c + 1) * CHUNK_TEXTS]) for c in mine]
        with tqdm(
            total=2 * config.copies * sum(sizes),
            desc=f"back-translation (process {process_index})",
            unit="text",
            disable=not progress,
        ) as bar:
            for c in mine:
                part = texts[c * CHUNK_TEXTS : (c + 1) * CHUNK_TEXTS]
                copies = []
                for copy in range(config.copies):
                    seeds = [_stage_seed(config.seed, copy, stage, chunk=c) for stage in (0, 1)]
                    german = _translate(forward, part, config, seeds[0], bar)
                    copies.append(_translate(backward, german, config, seeds[1], bar))
                atomic_write_text(self.path(c), json.dumps(copies, ensure_ascii=False))

    def read_all(self, copies: int) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in range(copies)]
        for c in range(self.count):
            part = json.loads(self.path(c).read_text())
            for copy in range(copies):
                out[copy].extend(part[copy])
        return out


def _wait_for(done: Callable[[], bool], poll_s: float, what: str) -> None:
    """Poll the file system until ``done()``, logging what is awaited every few minutes."""
    start = last = time.monotonic()
    while not done():
        if time.monotonic() - last > 300:
            last = time.monotonic()
            log.info("back-translation: waiting for %s (%.0f s)", what, last - start)
        time.sleep(poll_s)


# --- internals ---------------------------------------------------------------------------
def _device(spec: str) -> Any:
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _stage_seed(seed: int, copy: int, stage: int, *, chunk: int | None = None) -> int:
    """An independent 63-bit seed per (seed, copy, direction[, chunk of the cache])."""
    entropy = [seed, copy, stage] + ([chunk] if chunk is not None else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def _load_translator(name: str, device: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a seq2seq translation model, on ``device``, in eval mode."""
    try:
        path = resolve_model_path(name)
    except ModelLoadError as err:
        raise ModelLoadError(
            f"back-translation model {name!r} cannot be loaded: {str(err).rstrip('.')}. "
            "The pre-trained translation "
            "models (Helsinki-NLP/opus-mt-*) need the Hugging Face hub once; or set "
            "forward_model/backward_model to local model folders."
        ) from err
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (ImportError, ValueError, OSError) as err:
        if importlib.util.find_spec("sentencepiece") is None:
            raise ImportError(
                f"the tokenizer of {name!r} needs sentencepiece: "
                "pip install 'tdmixup[backtranslation]'"
            ) from err
        raise
    model = AutoModelForSeq2SeqLM.from_pretrained(path).to(device).eval()
    return model, tokenizer


def _translate(
    translator: tuple[Any, Any],
    texts: list[str],
    config: BackTranslationConfig,
    seed: int,
    bar: Any,
) -> list[str]:
    """Translate ``texts`` in length-sorted batches under a private, seeded torch RNG."""
    import torch

    model, tokenizer = translator
    out = list(texts)
    todo = sorted((i for i, t in enumerate(texts) if t.strip()), key=lambda i: len(texts[i]))
    bar.update(len(texts) - len(todo))
    generate: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "num_beams": 1,
        "do_sample": config.do_sample,
    }
    if config.do_sample:
        generate.update(temperature=config.temperature, top_k=config.top_k)
    cuda = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, len(todo), config.batch_size):
            idx = todo[start : start + config.batch_size]
            batch = tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True
            )
            generated = model.generate(**batch.to(model.device), **generate)
            for i, text in zip(
                idx, tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True
            ):
                out[i] = text.strip()
            bar.update(len(idx))
    return out


def _check_dataset(dataset: Any, kind: str) -> tuple[str, ...]:
    """Validate the schema; return the fields to translate."""
    columns = {"single": SINGLE_COLUMNS, "pair": PAIR_COLUMNS, "multiple_choice": MC_COLUMNS}
    if kind not in columns:
        raise ValueError(f"kind must be 'single', 'pair' or 'multiple_choice', got {kind!r}")
    required = columns[kind]
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise DataError(
            f"a {kind} dataset needs columns {required}; missing {missing} "
            f"(have {dataset.column_names})"
        )
    if AUGMENTED_FROM in dataset.column_names:
        raise DataError(
            f"dataset already has an {AUGMENTED_FROM!r} column: it is already augmented"
        )
    ids = np.asarray(dataset["sample_id"], dtype=np.int64)
    if len(ids) and (ids.min() < 0 or len(np.unique(ids)) != len(ids)):
        raise DataError(
            "sample_id must be unique and >= 0 for new ids to be disjoint from the originals"
        )
    return {"single": ("text_a",), "pair": ("text_a", "text_b")}.get(kind, ("context",))


def _cache_key(dataset: Any, kind: str, config: BackTranslationConfig) -> str:
    """sha256 of the settings that change the output and of every column of ``dataset``."""
    settings = {k: v for k, v in asdict(config).items() if k != "device"}
    head = {"version": CACHE_VERSION, "chunk_texts": CHUNK_TEXTS, "kind": kind, **settings}
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    for name in dataset.column_names:
        h.update(json.dumps([name, list(dataset[name])], ensure_ascii=False, default=str).encode())
    return h.hexdigest()


def _write_cache(path: Path, dataset: Any, meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = dataset.data.table  # built here: no indices mapping to flatten
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"tdmixup": json.dumps(meta).encode()}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _read_cache(path: Path) -> Any:
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(pq.read_table(path)))
