"""The ``tdmixup predict`` and ``tdmixup export`` commands: their options and ``cmd_*`` functions
(registered in :data:`tdmixup.cli.commands.COMMANDS`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tdmixup.cli.options import _pair, label_names_from_cli


def add_predict_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup predict``: checkpoint, input, output, columns, labels, batching, temperature."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CHECKPOINT",
        help="A checkpoint folder (runs/x/stage4_tdmixup/checkpoint) or a `tdmixup export` folder.",
    )
    parser.add_argument(
        "--input", required=True, metavar="INPUT", help="Texts to classify: .jsonl, .csv or .tsv."
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="OUTPUT",
        help="Where to write one row per input, in input order: .jsonl, .csv or .tsv.",
    )
    parser.add_argument(
        "--column",
        action="append",
        type=_pair,
        default=[],
        metavar="FIELD=COLUMN",
        help="Which column holds each field, as in training (text_a, text_b, label; multiple "
        "choice: context, endings, label; optional sample_id); default: the columns the "
        "checkpoint was trained on. A label column is optional: with it, accuracy and ECE are "
        "reported too.",
    )
    parser.add_argument(
        "--label-names",
        action="append",
        default=[],
        metavar="NAME",
        help="Only a check: must equal the checkpoint's class names (they are recorded in it).",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="Inputs per batch (default 32).")
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        help="Truncate inputs to this many tokens (default: the length used in training).",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="Raw probabilities, softmax(logits); by default softmax(logits / T) with the "
        "temperature T fitted on dev and recorded in the checkpoint.",
    )


def cmd_predict(ns: argparse.Namespace) -> int:
    from tdmixup.inference.classifier import TextClassifier
    from tdmixup.inference.files import output_format
    from tdmixup.inference.prediction import format_result, predict_file
    from tdmixup.training.loop import make_accelerator

    if ns.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {ns.batch_size}")
    output_format(ns.output)  # a bad suffix is refused before the model loads
    if not Path(ns.input).is_file():
        raise ValueError(f"--input {ns.input}: file not found")
    accelerator = make_accelerator()
    clf = TextClassifier.from_pretrained(ns.checkpoint, accelerator=accelerator)
    result = predict_file(
        clf,
        ns.input,
        ns.output,
        columns=ns.column,
        label_names=label_names_from_cli(tuple(ns.label_names)) if ns.label_names else (),
        temperature=not ns.no_temperature,
        batch_size=ns.batch_size,
        max_length=ns.max_seq_length,
    )
    if accelerator.is_main_process:
        if clf.temperature is None and not ns.no_temperature:
            print(
                "tdmixup: the checkpoint records no temperature: raw probabilities",
                file=sys.stderr,
            )
        print(format_result(result))
    return 0


def add_export_options(parser: argparse.ArgumentParser) -> None:
    """``tdmixup export``: checkpoint, output folder, Hub upload."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CHECKPOINT",
        help="A checkpoint folder written by run or train (runs/x/stage4_tdmixup/checkpoint).",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="OUTPUT_DIR",
        help="The Hugging Face model folder to write (weights, tokenizer, config, model card).",
    )
    parser.add_argument(
        "--push-to-hub",
        default=None,
        metavar="PUSH_TO_HUB",
        help="Also upload the folder to this Hub model repository id, OWNER/NAME, with the token "
        "of HF_TOKEN or `huggingface-cli login`.",
    )
    parser.add_argument(
        "--private", action="store_true", help="Create the Hub repository as private."
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace an existing, non-empty --output-dir."
    )


def cmd_export(ns: argparse.Namespace) -> int:
    from tdmixup.inference.export import export_classifier

    if ns.push_to_hub is not None and ns.push_to_hub.count("/") != 1:
        raise ValueError(f"--push-to-hub {ns.push_to_hub}: expected a repository id OWNER/NAME")
    out = export_classifier(
        ns.checkpoint, ns.output_dir, overwrite=ns.overwrite, repo_id=ns.push_to_hub
    )
    print(f"exported → {out}")
    if ns.push_to_hub:
        from tdmixup.inference.hub import push_to_hub

        url = push_to_hub(out, ns.push_to_hub, private=ns.private)
        print(f"uploaded → {url}")
    return 0
