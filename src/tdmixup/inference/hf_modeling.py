"""Model classes of an exported tdmixup classifier (copied as ``modeling_tdmixup.py``).

This file is what ``trust_remote_code=True`` runs: it imports only torch and transformers, so it
works without tdmixup installed. A tdmixup classifier is an encoder, its last-layer [CLS] vector
and one linear layer (no pooler, no extra dense layer): the stock ``*ForSequenceClassification``
classes of BERT, RoBERTa and ELECTRA all put a nonlinear dense layer before their linear one, so
they cannot hold it exactly.

* :class:`TDMixUpForSequenceClassification`: ``logits [B, C] = W · h_[CLS] + b``;
* :class:`TDMixUpForMultipleChoice`: each ``[B, K, L]`` ending scored by ``W · h_[CLS] + b``,
  ``logits [B, K]``.

The exported ``W`` and ``b`` are the trained head divided by the temperature ``T`` fitted on dev
(``config.tdmixup_temperature``), so ``softmax(logits)`` is already calibrated. The trained head
is ``T · W`` and ``T · b``.

The config is a :class:`TDMixUpConfig` (``model_type: "tdmixup"``, the encoder's own fields plus
``tdmixup_encoder_type``), so a loader without ``trust_remote_code=True`` fails with an error
instead of building a stock ``*ForSequenceClassification`` (a pooler it would initialise at random
and a different head: wrong probabilities). The encoder keeps its architecture's own weight names
(``bert.``, ``roberta.``, ...) and its own config class, rebuilt by :func:`encoder_config`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MultipleChoiceModelOutput, SequenceClassifierOutput

MODEL_TYPE = "tdmixup"
_NOT_ENCODER = ("model_type", "auto_map", "architectures", "transformers_version")


class TDMixUpConfig(PretrainedConfig):
    """The encoder's config fields, ``tdmixup_encoder_type`` (its ``model_type``), the labels and
    the ``tdmixup_*`` fields, under a ``model_type`` of its own that stock classes refuse."""

    model_type = MODEL_TYPE


def wrapped_config(encoder_fields: dict[str, Any]) -> TDMixUpConfig:
    """A :class:`TDMixUpConfig` holding an encoder config's fields (``encoder_fields``, its
    ``to_dict()``), its ``model_type`` as ``tdmixup_encoder_type``; the inverse of
    :func:`encoder_config` (labels are the caller's to set)."""
    dropped = (*_NOT_ENCODER, "id2label", "label2id")
    fields = {k: v for k, v in encoder_fields.items() if k not in dropped}
    fields["tdmixup_encoder_type"] = encoder_fields["model_type"]
    return TDMixUpConfig(**fields)


def encoder_config(fields: dict[str, Any]) -> Any:
    """The encoder's own config (``BertConfig``, ...) from an exported ``config.json``'s fields
    (``tdmixup_encoder_type`` names its ``model_type``)."""
    kept = {
        k: v for k, v in fields.items() if not k.startswith("tdmixup_") and k not in _NOT_ENCODER
    }
    return AutoConfig.for_model(str(fields["tdmixup_encoder_type"]), **kept)


def _encoder(config: Any) -> Any:
    try:  # BERT and RoBERTa build a pooler unless told not to; the [CLS] head does not use it
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def _flat(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.reshape(-1, t.shape[-1])


_ATTENTION_FLAGS = (
    "_supports_sdpa",
    "_supports_flash_attn",
    "_supports_flex_attn",
    "_supports_attention_backend",
)


class _TDMixUpBase(PreTrainedModel):
    """Encoder (under its architecture's prefix) + linear head over the raw [CLS] vector."""

    config_class = TDMixUpConfig
    base_model_prefix = "tdmixup"  # the encoder's attribute is named per architecture below
    supports_gradient_checkpointing = True
    _outputs = 0

    def __init__(self, config: Any) -> None:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        inner = encoder_config(config.to_dict())
        try:
            encoder_class: Any = MODEL_MAPPING[type(inner)]
        except KeyError:  # an encoder registered elsewhere: claim no special attention kernel
            encoder_class = None
        for flag in _ATTENTION_FLAGS:  # the attention kernels its encoder supports
            object.__setattr__(self, flag, getattr(encoder_class, flag, False))
        super().__init__(config)
        inner._attn_implementation = config._attn_implementation  # as resolved for this model
        encoder = _encoder(inner)
        self.encoder_name = str(type(encoder).base_model_prefix or "encoder")
        self.add_module(self.encoder_name, encoder)
        self.dropout = nn.Dropout(float(getattr(config, "tdmixup_dropout", 0.1)))
        self.classifier = nn.Linear(config.hidden_size, self._outputs or config.num_labels)
        self.post_init()

    def _cls(self, **inputs: Any) -> torch.Tensor:
        encoder = getattr(self, self.encoder_name)
        given = {k: v for k, v in inputs.items() if v is not None}
        return encoder(**given).last_hidden_state[:, 0]


class TDMixUpForSequenceClassification(_TDMixUpBase):
    """``softmax(logits)`` is the calibrated class distribution (temperature folded in)."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        h = self._cls(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        )
        logits = self.classifier(self.dropout(h))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


class TDMixUpForMultipleChoice(_TDMixUpBase):
    """Inputs ``[B, K, L]``; ``softmax(logits [B, K])`` over the K endings is calibrated."""

    _outputs = 1

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> MultipleChoiceModelOutput:
        first = input_ids if input_ids is not None else inputs_embeds
        if first is None:
            raise ValueError("pass input_ids or inputs_embeds")
        k = first.shape[1]
        embeds = None if inputs_embeds is None else inputs_embeds.reshape(-1, *first.shape[2:])
        h = self._cls(
            input_ids=_flat(input_ids),
            attention_mask=_flat(attention_mask),
            token_type_ids=_flat(token_type_ids),
            inputs_embeds=embeds,
        )
        logits = self.classifier(self.dropout(h)).view(-1, k)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        return MultipleChoiceModelOutput(loss=loss, logits=logits)
