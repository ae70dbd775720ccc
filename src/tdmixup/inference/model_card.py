"""The model card (``README.md`` with the Hub's YAML metadata) of an exported classifier.

Everything in it is read from the run folder's files (never typed by hand): ``config.json`` (base
model, data, settings), the stage's ``done.json`` / ``metrics.json`` (training sizes and class
counts, accuracy and ECE before and after temperature scaling for every evaluated set),
``datamap/done.json`` (the data map's regions and class mix) and ``aum_<region>/summary.json``
(the AUM counts). A section whose file is absent says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tdmixup.core.layout import CONFIG, DATAMAP, DONE, METRICS, SUMMARY
from tdmixup.core.runio import atomic_write_text
from tdmixup.model.classifier import Classifier

HUB_DATASETS = {
    "snli": "stanfordnlp/snli",
    "mnli": "nyu-mll/multi_nli",
    "qqp": "nyu-mll/glue",
    "swag": "allenai/swag",
    "hellaswag": "Rowan/hellaswag",
    "snli_mc": "stanfordnlp/snli",
}
"""Hub ids of the built-in tasks' datasets (the card's ``datasets:`` metadata)."""
KIND_WORDS = {
    "pair": "sentence-pair",
    "multiple_choice": "multiple-choice",
    "single": "single-text",
}
STRATEGY_WORDS = {
    "none": "fine-tuned with plain cross-entropy on all training rows (no MixUp, no data map "
    "selection)",
    "mixup": "fine-tuned with MixUp (Zhang et al., 2018) of random pairs of each batch in the "
    "embedding space",
    "manifold": "fine-tuned with Manifold MixUp (Verma et al., 2019) of random pairs of each batch "
    "at the [CLS] feature",
    "kong": "fine-tuned with Kong et al. (2020)'s on- and off-manifold MixUp regularisers",
    "tdmixup": "fine-tuned with TDMixUp (Park & Caragea, NAACL 2022: MixUp between easy and "
    "ambiguous samples of a data map{aum})",
    "random_pairs": "fine-tuned with MixUp of random pairs from the easy and ambiguous samples of "
    "a data map{aum} (TDMixUp's Table 3 ablation)",
    "aum_saliency": "fine-tuned with MixUp guided by AUM and saliency (Park & Caragea, ACL 2022: "
    "high- and low-AUM halves, partners chosen by saliency)",
}
"""How the card's introduction words each strategy (``{aum}``: the AUM clause, when AUM ran)."""
SELECTING = frozenset({"tdmixup", "random_pairs", "aum_saliency"})
"""Strategies that train on a data map's or AUM's selection (the card's selection section)."""
OFFLINE_BASES = {"offline:all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def run_files(checkpoint: Path) -> dict[str, Any]:
    """The run folder's files a card reads, found from ``<stage>/checkpoint``: ``config``,
    ``done`` (the stage's), ``metrics``, ``datamap``, ``aum`` (``{region: summary}``) and
    ``stage`` (the stage folder's name)."""
    stage = checkpoint.resolve().parent
    run = stage if (stage / CONFIG).is_file() else stage.parent
    config = (_read(run / CONFIG) or {}).get("config", {})
    done = _read(stage / DONE) or {}
    metrics = done.get("metrics") or _read(stage / METRICS)
    aum = {
        p.name.removeprefix("aum_"): s
        for p in sorted(run.glob("aum_*"))
        if (s := _read(p / SUMMARY)) is not None
    }
    return {
        "config": config,
        "done": done,
        "metrics": metrics,
        "datamap": _read(run / DATAMAP / DONE),
        "aum": aum,
        "stage": stage.name,
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _yaml(meta: dict[str, Any]) -> str:
    """The card's front matter; values are JSON, which is valid YAML."""
    return "---\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in meta.items() if v) + "---\n"


def metadata(model: Classifier, files: dict[str, Any]) -> dict[str, Any]:
    """The Hub's YAML metadata: library, pipeline tag, base model, datasets, tags, metrics and a
    ``model-index`` with every evaluated set's accuracy and ECE (fractions)."""
    cfg, info = files["config"], model.info
    base = str(cfg.get("model", {}).get("name_or_path", ""))
    base = OFFLINE_BASES.get(base, base)
    hub_base = base if base.count("/") == 1 and not base.startswith((".", "/", "~")) else None
    task = info.task or cfg.get("data", {}).get("task", "")
    pipeline_tag = "text-classification" if model.kind != "multiple_choice" else None
    results = []
    for name, m in ((files["metrics"] or {}).get("sets") or {}).items():
        values = [{"type": "accuracy", "value": round(m["accuracy"], 4), "name": "accuracy"}]
        values.append({"type": "ece", "value": round(m["ece"], 4), "name": "ECE (raw)"})
        if "ece_scaled" in m:
            values.append(
                {"type": "ece", "value": round(m["ece_scaled"], 4), "name": "ECE (calibrated)"}
            )
        results.append(
            {
                "task": {"type": pipeline_tag or "multiple-choice"},
                "dataset": {"name": name, "type": name},
                "metrics": values,
            }
        )
    return {
        "library_name": "transformers",
        "pipeline_tag": pipeline_tag,
        "base_model": hub_base,
        "datasets": [HUB_DATASETS[task]] if task in HUB_DATASETS else None,
        "tags": ["tdmixup", "calibration", "temperature-scaling", "data-maps", "aum"],
        "metrics": ["accuracy"],
        "model-index": [{"name": f"tdmixup-{task}", "results": results}] if results else None,
    }


def card_text(model: Classifier, files: dict[str, Any], *, repo_id: str | None = None) -> str:
    """The whole ``README.md``: metadata, then loading, data, settings, selection and results."""
    cfg, done = files["config"], files["done"]
    data, train, mix = cfg.get("data", {}), cfg.get("train", {}), cfg.get("mixup", {})
    strategy = done.get("strategy", mix.get("strategy", "?"))
    where = repo_id or "path/to/this/folder"
    lines = [
        _yaml(metadata(model, files)),
        *_introduction(model, cfg, strategy, aum_ran=bool(files["aum"])),
        "## How to load\n",
        *_loading_section(model, where),
        "## Training data\n",
        _data_section(model, files),
        "## Strategy and settings\n",
        _settings_section(strategy, done, train, mix, data),
        *(["## Data map and AUM\n", _selection_section(files)] if strategy in SELECTING else []),
        "## Results\n",
        _results_section(files),
        "## Intended use and limitations\n",
        _limitations_section(model, files),
        f"\nExported by tdmixup from `{files['stage']}/checkpoint`.\n",
    ]
    return "\n".join(lines)


def _introduction(
    model: Classifier, cfg: dict[str, Any], strategy: str, *, aum_ran: bool
) -> list[str]:
    """The card's title, what the classifier is (worded by ``strategy``), and how its
    probabilities are calibrated."""
    info = model.info
    aum = ", with AUM-flagged samples removed" if aum_ran else ""
    t = info.temperature
    return [
        f"# tdmixup {info.task or cfg.get('data', {}).get('task', '')} classifier ({strategy})\n",
        f"A {KIND_WORDS.get(model.kind, model.kind)} classifier "
        + STRATEGY_WORDS.get(strategy, f"fine-tuned with strategy `{strategy}`").format(aum=aum)
        + f" with tdmixup from `{cfg.get('model', {}).get('name_or_path', '?')}`: "
        "the raw last-layer [CLS] vector → "
        f"one linear layer. Classes (`id2label`): {', '.join(info.label_names)}.\n",
        "Its probabilities are **calibrated**: temperature scaling "
        + (
            f"(T = {t:.2f}, fitted on dev"
            if t is not None
            else "(none: the stage was not evaluated"
        )
        + (f", {info.temperature_fitted_on.get('n')} rows" if info.temperature_fitted_on else "")
        + ") is folded into the head (weight / T, bias / T), so every loader returns "
        "`softmax(logits / T)`. `config.tdmixup_temperature` keeps T: the raw head is "
        "T · weight, T · bias.\n",
    ]


def _loading_section(model: Classifier, where: str) -> list[str]:
    """How to load the model from ``where``: transformers (remote code), pipeline, tdmixup."""
    auto = (
        "AutoModelForMultipleChoice"
        if model.kind == "multiple_choice"
        else ("AutoModelForSequenceClassification")
    )
    lines = [
        "The head is not a stock transformers head (BERT's, RoBERTa's and ELECTRA's all put a "
        "nonlinear dense layer before the linear one), so the model class is in "
        "`modeling_tdmixup.py` beside the weights: pass **`trust_remote_code=True`** (read that "
        "file first: a short module of torch and transformers code). Without it every loader "
        "(`AutoModel*`, `pipeline`, the inference widget) stops with an error: `config.json` has "
        '`model_type: "tdmixup"`, which no stock class claims.\n',
        "```python",
        f"from transformers import {auto}, AutoTokenizer, pipeline",
        f'model = {auto}.from_pretrained("{where}", trust_remote_code=True)',
        f'tokenizer = AutoTokenizer.from_pretrained("{where}", trust_remote_code=True)',
    ]
    if model.kind == "pair":
        lines += [
            f'clf = pipeline("text-classification", model="{where}", top_k=None, '
            "trust_remote_code=True)",
            'clf({"text": "A man plays a guitar.", "text_pair": "A person makes music."})',
        ]
    elif model.kind != "multiple_choice":
        lines += [
            f'clf = pipeline("text-classification", model="{where}", top_k=None, '
            "trust_remote_code=True)",
            'clf("a text to classify")',
        ]
    lines += [
        "```\n",
        "With tdmixup: `tdmixup predict --checkpoint "
        f"{where} --input new.jsonl --output predictions.csv`, or "
        f'`tdmixup.TextClassifier.from_pretrained("{where}").predict_proba(...)`. '
        f"Inputs were truncated to {model.info.max_seq_length} tokens in training "
        "(`truncation=True` in the pipeline call does the same).\n",
    ]
    return lines


def _data_section(model: Classifier, files: dict[str, Any]) -> str:
    data, done, info = files["config"].get("data", {}), files["done"], model.info
    sizes = done.get("train_sizes") or []
    counts = done.get("train_class_counts") or []
    rows = [
        f"- task: `{info.task or data.get('task')}`"
        + (f" (files: train `{data.get('train_file')}`)" if data.get("train_file") else ""),
        f"- columns: {', '.join(f'`{f}` ← `{c}`' for f, c in info.columns) or 'built-in'}",
        f"- training rows: {' + '.join(str(s) for s in sizes) or '?'}"
        + (" (one set per training batch stream)" if len(sizes) > 1 else ""),
    ]
    fit = info.temperature_fitted_on or {}
    if fit.get("n") and not data.get("dev_file"):
        rows.append(f"  - {fit['n']} more rows of the training file were held out as the dev set")
    if data.get("train_size"):
        rows.append(f"  - `train_size` setting (an upper bound): {data['train_size']}")
    for i, c in enumerate(counts):
        rows.append(
            f"  - training set {i + 1} by class: " + ", ".join(f"{k} {v}" for k, v in c.items())
        )
    if fit:
        rows.append(f"- dev (temperature): {fit.get('n')} rows, {fit.get('source')}")
    for name, m in ((files["metrics"] or {}).get("sets") or {}).items():
        rows.append(f"- evaluation set `{name}`: {m['n']} rows")
    return "\n".join(rows) + "\n"


def _settings_section(
    strategy: str,
    done: dict[str, Any],
    train: dict[str, Any],
    mix: dict[str, Any],
    data: dict[str, Any],
) -> str:
    mix = done.get("mixup") or mix
    keys = ("alpha", "lambda_mode", "mix_at", "mixed_weight", "unmixed_weight", "label_smoothing")
    rows = [f"- strategy: `{strategy}`"]
    if strategy != "none":
        rows.append("- MixUp: " + ", ".join(f"{k} {mix[k]}" for k in keys if k in mix))
    elif mix.get("label_smoothing"):
        rows.append(f"- label smoothing: {mix['label_smoothing']}")
    rows += [
        "- training: "
        + ", ".join(
            f"{k} {train[k]}"
            for k in (
                "epochs",
                "learning_rate",
                "batch_size",
                "weight_decay",
                "warmup_ratio",
                "seed",
            )
            if k in train
        )
        + f", max_seq_length {data.get('max_seq_length')}",
    ]
    return "\n".join(rows) + "\n"


def _selection_section(files: dict[str, Any]) -> str:
    rows = []
    dm = files["datamap"]
    if dm:
        rows.append(
            f"Data map of stage 1 over {dm.get('n')} training samples (regions "
            f"{'stratified by class' if dm.get('stratify_regions') else 'unstratified'}):\n"
        )
        rows.append("| region | samples | by class |\n|---|---|---|")
        classes = dm.get("class_counts") or {}
        for region, n in (dm.get("regions") or {}).items():
            by = ", ".join(f"{k} {v}" for k, v in (classes.get(region) or {}).items())
            rows.append(f"| {region} | {n} | {by} |")
        rows.append("")
    else:
        rows.append("No data map in this run folder.\n")
    for region, s in (files["aum"] or {}).items():
        cc = s.get("class_counts") or {}
        rows.append(
            f"AUM on `{region}` ({s.get('procedure')}, percentile {s.get('percentile')}): "
            f"{s.get('n')} samples, {s.get('n_flagged')} flagged as likely mislabeled, "
            f"{s.get('n_kept')} kept"
            + (
                " (kept by class: " + ", ".join(f"{k} {v}" for k, v in cc["kept"].items()) + ")"
                if "kept" in cc
                else ""
            )
            + ".\n"
        )
    if not files["aum"]:
        rows.append("No AUM run in this run folder.\n")
    return "\n".join(rows)


def _limitations_section(model: Classifier, files: dict[str, Any]) -> str:
    """What the probabilities were checked on: the dev set of the temperature, the evaluated
    sets, the label names."""
    fit = model.info.temperature_fitted_on or {}
    sets = list(((files["metrics"] or {}).get("sets") or {}).keys())
    rows = [
        "- Predicts one of: "
        + ", ".join(f"`{n}`" for n in model.info.label_names)
        + "; every input gets one of these labels, even one that fits none of them.",
        (
            f"- The temperature was fitted on the dev set ({fit.get('n')} rows"
            + (f", {fit['source']}" if fit.get("source") else "")
            + "): the probabilities are calibrated for data like it."
            if fit
            else "- No temperature was fitted (the stage was not evaluated): raw probabilities."
        ),
        (
            "- Accuracy and calibration were measured only on "
            + ", ".join(f"`{n}`" for n in sets)
            + " (see Results); on other domains they are unmeasured and usually worse."
            if sets
            else "- Accuracy and calibration were not measured on any test set."
        ),
    ]
    return "\n".join(rows) + "\n"


def _results_section(files: dict[str, Any]) -> str:
    metrics = files["metrics"] or {}
    sets = metrics.get("sets") or {}
    if not sets:
        return "This stage was not evaluated.\n"
    t = metrics.get("temperature")
    rows = [
        "Accuracy and expected calibration error (10 bins, %), before and after temperature "
        + (f"scaling (T = {t:.2f}, fitted on dev):\n" if t is not None else "scaling:\n"),
        "| set | n | accuracy | ECE raw | ECE calibrated | NLL raw | NLL calibrated |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in sets.items():
        rows.append(
            f"| {name} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['ece'])} | "
            f"{_pct(m.get('ece_scaled'))} | {m['nll']:.4f} | "
            f"{m['nll_scaled']:.4f} |"
            if "nll_scaled" in m
            else f"| {name} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['ece'])} | – | "
            f"{m['nll']:.4f} | – |"
        )
    check = metrics.get("learning_check") or {}
    if check.get("near_chance"):
        rows.append(f"\n**Warning**: {check['message']}.")
    return "\n".join(rows) + "\n"


def write_model_card(
    folder: Path, *, checkpoint: Path, model: Classifier, repo_id: str | None = None
) -> Path:
    """Write ``folder/README.md`` from the run folder around ``checkpoint`` (atomically)."""
    path = folder / "README.md"
    atomic_write_text(path, card_text(model, run_files(checkpoint), repo_id=repo_id))
    return path
