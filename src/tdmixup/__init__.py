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

from tdmixup import _compat

_compat.install()  # the import paths from before 0.3 (one flat folder) still work

__version__ = "0.3.0"
"""The one place the version is written: pyproject.toml reads it (``attr:``), ``tdmixup --version``
prints it, and ``importlib.metadata.version("tdmixup")`` of an installed copy agrees."""

_EXPORTS: dict[str, str] = {
    # configs
    "RunConfig": "tdmixup.core.config",
    "DataConfig": "tdmixup.core.config",
    "ModelConfig": "tdmixup.core.config",
    "TrainConfig": "tdmixup.core.config",
    "MixupConfig": "tdmixup.core.config",
    "DynamicsConfig": "tdmixup.core.config",
    "AUMConfig": "tdmixup.core.config",
    # data
    "TaskSpec": "tdmixup.data.schema",
    "DataError": "tdmixup.data.schema",
    "load_task": "tdmixup.data.tasks",
    "dataset_from_records": "tdmixup.data.inmemory",
    "tokenize": "tdmixup.data.collate",
    # model + training + evaluation
    "Classifier": "tdmixup.model.classifier",
    "build_classifier": "tdmixup.model.classifier",
    "load_classifier": "tdmixup.model.classifier",
    "train": "tdmixup.training.loop",
    "predict_logits": "tdmixup.model.predict",
    "evaluate_sets": "tdmixup.evaluation.sets",
    # dynamics, data maps, AUM
    "read_dynamics": "tdmixup.dynamics.table",
    "compute_statistics": "tdmixup.dynamics.table",
    "export_cartography": "tdmixup.dynamics.table",
    "read_cartography": "tdmixup.dynamics.table",
    "assign_regions": "tdmixup.dynamics.datamap",
    "plot_datamap_png": "tdmixup.dynamics.datamap_plots",
    "plot_datamap_html": "tdmixup.dynamics.datamap_plots",
    "save_datamap": "tdmixup.dynamics.datamap_plots",
    "area_under_margin": "tdmixup.dynamics.statistics",
    "find_mislabeled_with_aum": "tdmixup.dynamics.aum",
    "find_mislabeled": "tdmixup.dynamics.aum_arrays",
    "AUMPass": "tdmixup.dynamics.aum",
    "AUMResult": "tdmixup.dynamics.aum",
    "margins": "tdmixup.dynamics.statistics",
    "aum_threshold": "tdmixup.dynamics.aum",
    "flag_mislabeled": "tdmixup.dynamics.aum",
    "relabel_threshold_labels": "tdmixup.dynamics.aum",
    "inject_label_noise": "tdmixup.dynamics.noise",
    "flag_metrics": "tdmixup.dynamics.noise",
    "choose_threshold_samples": "tdmixup.dynamics.aum",
    "DynamicsCallback": "tdmixup.training.hf_trainer",
    # what a dynamics table was recorded on, and flags you can act on
    "text_hashes": "tdmixup.dynamics.fingerprint",
    "check_data": "tdmixup.dynamics.fingerprint",
    "DataFingerprint": "tdmixup.dynamics.fingerprint",
    "rank_suspects": "tdmixup.dynamics.suspects",
    "suspect_table": "tdmixup.dynamics.suspects",
    "suspects_per_class": "tdmixup.dynamics.suspects",
    "flag_warnings": "tdmixup.dynamics.suspects",
    # mixing and the back-translation baseline
    "compute_step": "tdmixup.strategies.step",
    "sample_lambda": "tdmixup.strategies.mixing",
    "StepOutput": "tdmixup.strategies.mixing",
    "smooth_targets": "tdmixup.strategies.mixing",
    "mix_tensors": "tdmixup.strategies.mixing",
    "mix_features": "tdmixup.strategies.mixing",
    "mix_embeddings": "tdmixup.strategies.mixing",
    "mixed_attention_mask": "tdmixup.strategies.mixing",
    "partner_index": "tdmixup.strategies.mixing",
    "soft_cross_entropy": "tdmixup.strategies.mixing",
    "hard_cross_entropy": "tdmixup.strategies.mixing",
    "one_hot": "tdmixup.strategies.mixing",
    "logit_saliency": "tdmixup.strategies.aum_saliency",
    "split_by_aum": "tdmixup.strategies.aum_saliency",
    "SaliencyColumn": "tdmixup.strategies.aum_saliency",
    "BackTranslationConfig": "tdmixup.strategies.backtranslation",
    "augment_with_back_translation": "tdmixup.strategies.backtranslation",
    # calibration
    "expected_calibration_error": "tdmixup.evaluation.calibration",
    "fit_temperature": "tdmixup.evaluation.calibration",
    "calibration_report": "tdmixup.evaluation.calibration",
    "reliability_diagram": "tdmixup.evaluation.calibration",
    "maximum_calibration_error": "tdmixup.evaluation.calibration",
    "negative_log_likelihood": "tdmixup.evaluation.calibration",
    "brier_score": "tdmixup.evaluation.calibration",
    "accuracy": "tdmixup.evaluation.calibration",
    # pipeline
    "RunLayout": "tdmixup.core.layout",
    "ExperimentLayout": "tdmixup.core.layout",
    "open_session": "tdmixup.run.session",
    "Session": "tdmixup.run.session",
    "train_and_evaluate": "tdmixup.run.session",
    "run_pipeline": "tdmixup.run.pipeline",
    # one call on in-memory data
    "fit": "tdmixup.run.fitting",
    "load_run": "tdmixup.run.fitting",
    "FitResult": "tdmixup.run.fitting",
    "find_label_issues": "tdmixup.run.label_issues",
    # using the trained classifier
    "TextClassifier": "tdmixup.inference.classifier",
    "CheckpointInfo": "tdmixup.model.classifier",
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
