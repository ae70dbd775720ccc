"""What the GPU parts share: where results go, the machine, atomic JSON, the SNLI pairs (read by
``benchmarks/throughput.py``, whose Trainer model the GPU throughput part also uses)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results"

sys.path.insert(0, str(HERE.parent))  # benchmarks/: the CPU benchmark's reader and Trainer model
import throughput  # noqa: E402

LABELS = throughput.LABELS


def data_dir() -> Path:
    """``$TDMIXUP_DATA_DIR`` (the GPU machine: a carried copy of ``../shared/data``), else the
    ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("TDMIXUP_DATA_DIR") or REPO.parent / "shared" / "data")


def snli_train() -> Path:
    return data_dir() / "snli" / "snli_1.0_train_first100k.jsonl"


def machine() -> dict[str, Any]:
    """The GPU (name, capability, memory), CPU, library versions and the TF32 flags."""
    import torch

    from tdmixup.core.runio import environment_info

    info: dict[str, Any] = {**environment_info(world_size=1), "node": platform.node()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu_capability"] = list(torch.cuda.get_device_capability(0))
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    info["load_average"] = list(os.getloadavg())
    info["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a part cut off keeps its last complete JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def load_pairs(n: int) -> dict[str, list[Any]]:
    """The first ``n`` gold-labelled SNLI pairs (all when ``n`` <= 0) as schema columns
    (``benchmarks/throughput.py``'s reader on :func:`snli_train`)."""
    return throughput.load_pairs(snli_train(), n)
