"""``tdmixup export``: a checkpoint as a standard Hugging Face model folder.

The folder holds ``config.json`` (a ``TDMixUpConfig``: ``model_type: "tdmixup"``, the encoder's
config fields with ``tdmixup_encoder_type``, ``id2label``/``label2id``, an ``auto_map`` and the
``tdmixup_*`` fields), ``model.safetensors``, the tokenizer,
``modeling_tdmixup.py`` (:mod:`tdmixup.inference.hf_modeling`) and a model card ``README.md``
(:mod:`tdmixup.inference.model_card`).

Why custom code (``trust_remote_code=True``): a tdmixup classifier is the raw last-layer [CLS]
vector → one linear layer. ``BertForSequenceClassification`` puts BERT's pooler (dense + tanh)
before its linear layer, RoBERTa's and ELECTRA's heads a dense layer with tanh or GELU: none can
hold a raw-[CLS] linear head exactly, so loading the weights into one of them would silently
change every prediction. The two small classes of ``modeling_tdmixup.py`` give the exact
function, in full precision and in half precision. The config's own ``model_type`` makes every
loader without ``trust_remote_code=True`` (``AutoModel*``, ``pipeline``, the Hub's widget) fail
with an error instead of loading a stock class with a random pooler (folders exported by
tdmixup 0.3.0 kept ``model_type: "bert"``: tdmixup still loads them, stock transformers
mispredicts on them; export them again).

Temperature scaling is folded into the head exactly: ``(W h + b) / T = (W / T) h + b / T``, so any
loader (``AutoModelForSequenceClassification``, ``pipeline``) returns calibrated probabilities;
``config.tdmixup_temperature`` keeps T, so the raw head is ``T · W``, ``T · b``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from tdmixup.model.classifier import Classifier, load_classifier

log = logging.getLogger("tdmixup.inference")

MODELING_FILE = "modeling_tdmixup.py"
CLASS_NAMES = {
    "multiple_choice": ("AutoModelForMultipleChoice", "TDMixUpForMultipleChoice"),
}
DEFAULT_CLASS = ("AutoModelForSequenceClassification", "TDMixUpForSequenceClassification")


def auto_class(kind: str) -> tuple[str, str]:
    """``(Auto class, tdmixup class)`` names that load a classifier of ``kind``."""
    return CLASS_NAMES.get(kind, DEFAULT_CLASS)


def hf_model(model: Classifier, *, temperature: float | None) -> Any:
    """The Hugging Face model (:mod:`~tdmixup.inference.hf_modeling`) with ``model``'s weights and
    the head divided by ``temperature`` (1.0 when None); its config holds the ``tdmixup_*``
    fields and the ``auto_map``."""
    from tdmixup.inference import hf_modeling

    info, kind = model.info, str(model.kind)
    t = float(temperature) if temperature is not None else 1.0
    auto, cls_name = auto_class(kind)
    config = hf_modeling.wrapped_config(model.encoder.config.to_dict())
    config.architectures = [cls_name]
    module = MODELING_FILE.removesuffix(".py")
    config.auto_map = {"AutoConfig": f"{module}.TDMixUpConfig", auto: f"{module}.{cls_name}"}
    if kind != "multiple_choice":
        config.num_labels = model.num_labels
        config.id2label = dict(enumerate(info.label_names))
        config.label2id = {n: i for i, n in enumerate(info.label_names)}
    config.tdmixup_kind = kind
    config.tdmixup_num_labels = model.num_labels
    config.tdmixup_label_names = list(info.label_names)
    config.tdmixup_task = info.task
    config.tdmixup_columns = dict(info.columns)
    config.tdmixup_max_seq_length = info.max_seq_length
    config.tdmixup_dropout = float(model.dropout.p)
    config.tdmixup_temperature = temperature
    config.tdmixup_temperature_fitted_on = dict(info.temperature_fitted_on or {}) or None
    config.tdmixup_encoder_prefix = str(type(model.encoder).base_model_prefix)
    hf = getattr(hf_modeling, cls_name)(config)
    encoder = getattr(hf, hf.encoder_name)
    wanted = encoder.state_dict().keys()
    encoder.load_state_dict({k: v for k, v in model.encoder.state_dict().items() if k in wanted})
    with torch.no_grad():
        hf.classifier.weight.copy_(model.head.weight / t)
        hf.classifier.bias.copy_(model.head.bias / t)
    return hf.eval()


def export_classifier(
    checkpoint: str | Path,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    card: bool = True,
    repo_id: str | None = None,
) -> Path:
    """Write ``checkpoint`` as a Hugging Face model folder (see the module docstring); the model
    card names ``repo_id`` in its loading examples when given.

    Written into ``<output_dir>.tmp`` and renamed, so ``output_dir`` is complete or absent.

    Raises:
        ValueError: ``output_dir`` exists and is not empty (without ``overwrite``).
    """
    from tdmixup.inference import hf_modeling

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--output-dir {out}: exists and is not empty (use --overwrite)")
    model, tokenizer = load_classifier(checkpoint)
    if model.info.temperature is None:
        log.warning(
            "%s records no temperature (the stage was not evaluated): exporting raw probabilities",
            checkpoint,
        )
    hf = hf_model(model, temperature=model.info.temperature)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(tmp)
    shutil.copyfile(hf_modeling.__file__, tmp / MODELING_FILE)
    if model.info.max_seq_length:
        tokenizer.model_max_length = int(model.info.max_seq_length)
    tokenizer.save_pretrained(tmp)
    if card:
        from tdmixup.inference.model_card import write_model_card

        write_model_card(tmp, checkpoint=Path(checkpoint), model=model, repo_id=repo_id)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
