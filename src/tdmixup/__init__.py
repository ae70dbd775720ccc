"""tdmixup: training-dynamics-guided MixUp (Park & Caragea, NAACL 2022) for calibrated classifiers.

The public API (imported lazily, so ``import tdmixup`` and ``tdmixup --help`` stay fast)::

    from tdmixup import RunConfig, load_task, build_classifier, train, evaluate_sets
    from tdmixup import read_dynamics, compute_statistics, assign_regions
    from tdmixup import find_mislabeled, find_mislabeled_with_aum, inject_label_noise
    from tdmixup import expected_calibration_error, fit_temperature   # (labels, logits)
    from tdmixup import sample_lambda, mix_tensors, soft_cross_entropy
    from tdmixup import DynamicsCallback            # record dynamics inside a HF Trainer
    from tdmixup import TextClassifier, export_classifier   # use and share the trained model
    from tdmixup import fit, load_run, find_label_issues    # one call on a Dataset / DataFrame
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"
"""The one place the version is written: pyproject.toml reads it (``attr:``), ``tdmixup --version``
prints it, and ``importlib.metadata.version("tdmixup")`` of an installed copy agrees."""

_EXPORTS: dict[str, str] = {
    # configs
    "RunConfig": "tdmixup.config",
    "DataConfig": "tdmixup.config",
    "ModelConfig": "tdmixup.config",
    "TrainConfig": "tdmixup.config",
    "MixupConfig": "tdmixup.config",
    "DynamicsConfig": "tdmixup.config",
    "AUMConfig": "tdmixup.config",
    # data
    "TaskSpec": "tdmixup.data.schema",
    "DataError": "tdmixup.data.schema",
    "load_task": "tdmixup.data.tasks",
    "dataset_from_records": "tdmixup.data.inmemory",
    "tokenize": "tdmixup.data.collate",
    # model + training + evaluation
    "Classifier": "tdmixup.model",
    "build_classifier": "tdmixup.model",
    "load_classifier": "tdmixup.model",
    "train": "tdmixup.training",
    "predict_logits": "tdmixup.predict",
    "evaluate_sets": "tdmixup.evaluation",
    # dynamics, data maps, AUM
    "read_dynamics": "tdmixup.dynamics",
    "compute_statistics": "tdmixup.dynamics",
    "export_cartography": "tdmixup.dynamics",
    "read_cartography": "tdmixup.dynamics",
    "assign_regions": "tdmixup.datamap",
    "plot_datamap_png": "tdmixup.datamap_plots",
    "plot_datamap_html": "tdmixup.datamap_plots",
    "save_datamap": "tdmixup.datamap_plots",
    "area_under_margin": "tdmixup.sample_statistics",
    "find_mislabeled_with_aum": "tdmixup.aum",
    "find_mislabeled": "tdmixup.aum_arrays",
    "AUMPass": "tdmixup.aum",
    "AUMResult": "tdmixup.aum",
    "margins": "tdmixup.sample_statistics",
    "aum_threshold": "tdmixup.aum",
    "flag_mislabeled": "tdmixup.aum",
    "relabel_threshold_labels": "tdmixup.aum",
    "inject_label_noise": "tdmixup.noise",
    "flag_metrics": "tdmixup.noise",
    "choose_threshold_samples": "tdmixup.aum",
    "DynamicsCallback": "tdmixup.hf_trainer",
    # what a dynamics table was recorded on, and flags you can act on
    "text_hashes": "tdmixup.fingerprint",
    "check_data": "tdmixup.fingerprint",
    "DataFingerprint": "tdmixup.fingerprint",
    "rank_suspects": "tdmixup.suspects",
    "suspect_table": "tdmixup.suspects",
    "suspects_per_class": "tdmixup.suspects",
    "flag_warnings": "tdmixup.suspects",
    # mixing and the back-translation baseline
    "compute_step": "tdmixup.mixup",
    "sample_lambda": "tdmixup.mixing",
    "StepOutput": "tdmixup.mixing",
    "smooth_targets": "tdmixup.mixing",
    "mix_tensors": "tdmixup.mixing",
    "mix_features": "tdmixup.mixing",
    "mix_embeddings": "tdmixup.mixing",
    "mixed_attention_mask": "tdmixup.mixing",
    "partner_index": "tdmixup.mixing",
    "soft_cross_entropy": "tdmixup.mixing",
    "hard_cross_entropy": "tdmixup.mixing",
    "one_hot": "tdmixup.mixing",
    "logit_saliency": "tdmixup.aum_saliency",
    "split_by_aum": "tdmixup.aum_saliency",
    "SaliencyColumn": "tdmixup.aum_saliency",
    "BackTranslationConfig": "tdmixup.backtranslation",
    "augment_with_back_translation": "tdmixup.backtranslation",
    # calibration
    "expected_calibration_error": "tdmixup.calibration",
    "fit_temperature": "tdmixup.calibration",
    "calibration_report": "tdmixup.calibration",
    "reliability_diagram": "tdmixup.calibration",
    "maximum_calibration_error": "tdmixup.calibration",
    "negative_log_likelihood": "tdmixup.calibration",
    "brier_score": "tdmixup.calibration",
    "accuracy": "tdmixup.calibration",
    # pipeline
    "RunLayout": "tdmixup.layout",
    "ExperimentLayout": "tdmixup.layout",
    "open_session": "tdmixup.session",
    "Session": "tdmixup.session",
    "train_and_evaluate": "tdmixup.session",
    "run_pipeline": "tdmixup.pipeline",
    # one call on in-memory data
    "fit": "tdmixup.fitting",
    "load_run": "tdmixup.fitting",
    "FitResult": "tdmixup.fitting",
    "find_label_issues": "tdmixup.label_issues",
    # using the trained classifier
    "TextClassifier": "tdmixup.inference.classifier",
    "CheckpointInfo": "tdmixup.model",
    "predict_file": "tdmixup.inference.prediction",
    "export_classifier": "tdmixup.inference.export",
    "push_to_hub": "tdmixup.inference.hub",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tdmixup' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
