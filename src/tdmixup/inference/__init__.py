"""What a trained classifier is used for: predictions on new text, a Hugging Face export, a model
card and the Hub.

* :class:`~tdmixup.inference.classifier.TextClassifier`: ``from_checkpoint`` / ``from_pretrained``,
  then ``predict_proba`` and ``predict`` on strings, ``(a, b)`` pairs or multiple-choice items;
* :func:`~tdmixup.inference.prediction.predict_file`: ``tdmixup predict``'s core;
* :func:`~tdmixup.inference.export.export_classifier`: ``tdmixup export``'s folder, with its
  model card (:mod:`~tdmixup.inference.model_card`);
* :func:`~tdmixup.inference.hub.push_to_hub`: upload that folder.

Imported lazily: ``tdmixup --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TextClassifier": "tdmixup.inference.classifier",
    "predict_file": "tdmixup.inference.prediction",
    "export_classifier": "tdmixup.inference.export",
    "push_to_hub": "tdmixup.inference.hub",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tdmixup.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
