"""Data layer: readers for every source format, the task registry and :func:`load_task`.

Every reader returns a :class:`datasets.Dataset` in the schema of :mod:`tdmixup.data.schema`.
"""

from tdmixup.data.dd_format import read_calibration_data, read_calibration_file
from tdmixup.data.hub import HUB_SOURCES, from_hub, read_hub
from tdmixup.data.inmemory import dataset_from_records
from tdmixup.data.readers import (
    DD_NLI_LABELS,
    MC4_LABELS,
    NLI_LABELS,
    PARAPHRASE_LABELS,
    QQP_LABELS,
    SST2_LABELS,
    read_chaosnli,
    read_hellaswag_jsonl,
    read_hellaswag_text,
    read_nli_jsonl,
    read_qqp_tsv,
    read_swag_csv,
    read_table,
    read_twitter_url_corpus,
    split_dataset,
)
from tdmixup.data.schema import DataError, TaskKind, TaskSpec, data_error, is_classification
from tdmixup.data.sources import fetch_snli_sdist, find_data_file, verify_sha256
from tdmixup.data.tasks import TASKS, TaskData, load_task

__all__ = [
    "DD_NLI_LABELS",
    "HUB_SOURCES",
    "MC4_LABELS",
    "NLI_LABELS",
    "PARAPHRASE_LABELS",
    "QQP_LABELS",
    "SST2_LABELS",
    "TASKS",
    "DataError",
    "TaskData",
    "TaskKind",
    "TaskSpec",
    "data_error",
    "dataset_from_records",
    "fetch_snli_sdist",
    "find_data_file",
    "from_hub",
    "is_classification",
    "load_task",
    "read_calibration_data",
    "read_calibration_file",
    "read_chaosnli",
    "read_hellaswag_jsonl",
    "read_hellaswag_text",
    "read_hub",
    "read_nli_jsonl",
    "read_qqp_tsv",
    "read_swag_csv",
    "read_table",
    "read_twitter_url_corpus",
    "split_dataset",
    "verify_sha256",
]
