"""Training dynamics: per-epoch logits keyed by sample id, and the statistics derived from them.

Storage is one long Parquet table with a row per ``(sample_id, epoch)``: ``sample_id`` int64,
``epoch`` int32, ``gold`` int32, ``logits`` fixed_size_list<float32>[C] (pre-softmax) and,
since 0.x, ``text_hash`` uint64 (a hash of the row's text,
:func:`tdmixup.dynamics.fingerprint.text_hashes`). The schema metadata holds ``schema_version``,
``mode`` (``epoch_end``: an inference pass after each epoch, the paper's Eq. 1; ``train_pass``:
logits seen during the training pass, what Dataset Cartography records), ``num_classes``, ``task``
and, when known, ``label_names`` (JSON list) and ``columns`` (JSON: the column mapping or text
columns the rows were read with). Rows are kept sorted by ``(epoch, sample_id)``.

The ids, gold labels and text hashes are the table's fingerprint of its data: every consumer that
joins texts or labels to the table checks them first (:meth:`TrainingDynamics.check_data`), so a
data map never shows the sentences of another file. Tables written before the text hashes are
read as before; checking them warns that only ids and labels can be compared.

:func:`append_epoch` rewrites the whole file (old epochs + the new one) into a temporary file in
the same folder and renames it over the old one, so a crash never leaves a half-written table.
Rewriting is cheap next to an epoch of training: SNLI-sized (550,152 samples × 3 classes), the
third append rewrites 1.65 M rows in 0.4–1.2 s on a shared 2-core machine (measured by
``benchmarks/statistics_speed.py``), so one file is kept rather than per-epoch parts + manifest.

The statistics of each sample over the epochs (confidence, variability, correctness,
forgetting events, AUM) are computed on plain arrays in :mod:`tdmixup.dynamics.statistics`;
:func:`compute_statistics` gives them for a :class:`TrainingDynamics` as a table indexed by sample
id. Those functions stay importable from here (``from tdmixup.dynamics.table import margins``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from tdmixup.core.config import DynamicsMode
from tdmixup.core.runio import atomic_output
from tdmixup.dynamics.statistics import (
    area_under_margin,
    confidence,
    correctness,
    forgetting_events,
    gold_probabilities,
    margins,
    per_sample_statistics,
    variability,
)

__all__ = [
    "SCHEMA_VERSION",
    "TrainingDynamics",
    "append_epoch",
    "read_dynamics",
    "export_cartography",
    "read_cartography",
    "compute_statistics",
    # per-sample statistics on arrays, from tdmixup.dynamics.statistics
    "gold_probabilities",
    "confidence",
    "variability",
    "correctness",
    "forgetting_events",
    "margins",
    "area_under_margin",
]

SCHEMA_VERSION = "1"
_MODES = ("epoch_end", "train_pass")
_CARTOGRAPHY_FILE = re.compile(r"^(?P<prefix>.*)dynamics_epoch_(?P<epoch>\d+)\.jsonl?$")


@dataclass(frozen=True, eq=False)
class TrainingDynamics:
    """Logits of every training sample at every recorded epoch.

    Attributes:
        sample_ids: ``[N]`` int64 sample ids, sorted ascending.
        gold: ``[N]`` int64 gold class indices in ``[0, C)``.
        logits: ``[E, N, C]`` float32 pre-softmax logits; ``logits[e, i]`` belongs to
            ``sample_ids[i]`` at epoch ``epochs[e]``.
        epochs: ``[E]`` int64 epoch numbers, ascending.
        mode: ``"epoch_end"`` or ``"train_pass"`` (see the module docstring).
        task: task name recorded with the table (may be empty).
        text_hash: ``[N]`` uint64 hash of each sample's text, or None (a table written before
            tdmixup recorded them, or recorded without texts).
        label_names: class names in index order, or ``()`` when not recorded.
        columns: JSON of the column mapping / text columns the rows were read with, or ``""``.
    """

    sample_ids: np.ndarray
    gold: np.ndarray
    logits: np.ndarray
    epochs: np.ndarray
    mode: DynamicsMode
    task: str = ""
    text_hash: np.ndarray | None = None
    label_names: tuple[str, ...] = ()
    columns: str = ""

    def __post_init__(self) -> None:
        num_epochs, num_samples, _ = (
            np.shape(self.logits) if np.ndim(self.logits) == 3 else (0, -1, 0)
        )
        if (
            num_samples != len(self.sample_ids)
            or len(self.gold) != num_samples
            or len(self.epochs) != num_epochs
        ):
            raise ValueError(
                "TrainingDynamics: expected logits [E, N, C] with "
                "N = len(sample_ids) = len(gold) and E = len(epochs); "
                f"got logits {np.shape(self.logits)}, {len(self.sample_ids)} sample ids, "
                f"{len(self.gold)} gold labels, {len(self.epochs)} epochs"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.logits.shape[2])

    def check_data(
        self,
        dataset: object,
        *,
        data: object,
        table: object = "the dynamics table",
        label_names: Sequence[str] = (),
    ) -> None:
        """Refuse ``dataset`` unless it holds every recorded sample with the same gold label and
        text (:func:`tdmixup.dynamics.fingerprint.check_data`); ``data`` and ``table`` name them in
        the one-line :class:`~tdmixup.data.schema.DataError`, which names the classes by the
        table's label names and ``label_names`` (the data's, in index order) when given."""
        from tdmixup.dynamics.fingerprint import check_data

        check_data(
            self.sample_ids,
            self.gold,
            self.text_hash,
            dataset,
            table=table,
            data=data,
            recorded_label_names=self.label_names,
            label_names=label_names,
        )


# --------------------------------------------------------------------------- files


def _few(ids: np.ndarray, k: int = 5) -> str:
    more = f" … ({len(ids)} in all)" if len(ids) > k else ""
    return ", ".join(str(i) for i in ids[:k].tolist()) + more


def _check_epoch(
    sample_ids: object, gold: object, logits: object, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one epoch's arrays and return them sorted by sample id (int64, int64, float32)."""
    ids = np.asarray(sample_ids)
    labels = np.asarray(gold)
    z = np.asarray(logits, dtype=np.float32)
    if (
        ids.ndim != 1
        or labels.shape != ids.shape
        or z.ndim != 2
        or len(z) != len(ids)
        or z.shape[1] < 2
    ):
        raise ValueError(
            f"{where}: expected sample_ids [N], gold [N] and logits [N, C] with C ≥ 2; got shapes "
            f"{ids.shape}, {labels.shape}, {z.shape}"
        )
    if not (np.issubdtype(ids.dtype, np.integer) and np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(
            f"{where}: sample_ids and gold must be integers; got {ids.dtype} and {labels.dtype}"
        )
    ids, labels = ids.astype(np.int64), labels.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    ids, labels, z = ids[order], labels[order], z[order]
    duplicated = np.unique(ids[1:][ids[1:] == ids[:-1]])
    if len(duplicated):
        raise ValueError(
            f"{where}: every sample id must appear exactly once; repeated: {_few(duplicated)}"
        )
    bad_gold = ids[(labels < 0) | (labels >= z.shape[1])]
    if len(bad_gold):
        raise ValueError(
            f"{where}: gold must be in [0, {z.shape[1]}); "
            f"out of range for sample ids {_few(bad_gold)}"
        )
    not_finite = ids[~np.isfinite(z).all(axis=1)]
    if len(not_finite):
        raise ValueError(
            f"{where}: logits must be finite; NaN/inf for sample ids {_few(not_finite)}"
        )
    return ids, labels, z


def _check_same_samples(
    ref_ids: np.ndarray, ref_gold: np.ndarray, ids: np.ndarray, gold: np.ndarray, where: str
) -> None:
    """Both id arrays are sorted; raise naming the missing/extra ids or the changed gold labels."""
    if not np.array_equal(ref_ids, ids):
        missing, extra = np.setdiff1d(ref_ids, ids), np.setdiff1d(ids, ref_ids)
        raise ValueError(
            f"{where}: the sample ids differ from the earlier epochs: {len(missing)} missing "
            f"({_few(missing) or 'none'}), {len(extra)} extra ({_few(extra) or 'none'}). "
            "Every epoch must record every training sample exactly once."
        )
    changed = ids[ref_gold != gold]
    if len(changed):
        raise ValueError(
            f"{where}: gold labels differ from the earlier epochs for sample ids {_few(changed)}"
        )


def _metadata(schema: pa.Schema, path: Path) -> dict[str, str]:
    raw = schema.metadata or {}
    meta = {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW:")}
    missing = {"schema_version", "mode", "num_classes", "task"} - set(meta)
    if missing:
        raise ValueError(f"{path}: not a tdmixup dynamics table (metadata lacks {sorted(missing)})")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {meta['schema_version']} is not the supported {SCHEMA_VERSION}"
        )
    return meta


def append_epoch(
    path: str | os.PathLike[str],
    *,
    epoch: int,
    sample_ids: np.ndarray,
    gold: np.ndarray,
    logits: np.ndarray,
    mode: DynamicsMode,
    task: str = "",
    text_hash: np.ndarray | None = None,
    label_names: Sequence[str] = (),
    columns: str = "",
) -> None:
    """Add (or replace) one epoch of logits in the dynamics table at ``path``, atomically.

    Re-recording an epoch already in the table replaces its rows, so a run resumed after a
    crash can record the same epoch again.

    Args:
        path: Parquet file; created with its folder if missing.
        epoch: epoch number (any non-negative integer; the paper's code counts from 0).
        sample_ids: ``[N]`` integer ids, each exactly once, any order.
        gold: ``[N]`` gold class indices in ``[0, C)``.
        logits: ``[N, C]`` pre-softmax logits (stored as float32, must be finite).
        mode: ``"epoch_end"`` or ``"train_pass"``; must match the table's.
        task: task name; must match the table's.
        text_hash: ``[N]`` uint64 hash of each sample's text, in ``sample_ids``' order
            (:func:`tdmixup.dynamics.fingerprint.text_hashes`); must match the earlier epochs'.
        label_names: class names in index order (stored once, for data maps and reports).
        columns: JSON of the column mapping the rows were read with (stored as given).

    Raises:
        ValueError: on bad shapes, repeated ids, a sample-id set, gold labels or text hashes that
            differ from the earlier epochs (naming a few ids), or a mode / class count / task
            mismatch.
    """
    path = Path(path)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
    if int(epoch) != epoch or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer; got {epoch!r}")
    where = f"{path}, epoch {epoch}"
    hashes = _sorted_text_hashes(text_hash, sample_ids, where)
    ids, labels, z = _check_epoch(sample_ids, gold, logits, where)
    num_classes = z.shape[1]
    new = _epoch_table(epoch, ids, labels, z, hashes)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "num_classes": str(num_classes),
        "task": task,
    }
    if label_names:
        meta["label_names"] = json.dumps([str(n) for n in label_names])
    if columns:
        meta["columns"] = columns
    table = new
    if path.exists():
        table = _with_earlier_epochs(
            path, new, meta, epoch=epoch, ids=ids, labels=labels, where=where
        )
    table = table.replace_schema_metadata({k: v.encode() for k, v in meta.items()})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def _sorted_text_hashes(
    text_hash: np.ndarray | None, sample_ids: np.ndarray, where: str
) -> np.ndarray | None:
    """``text_hash`` as uint64 in sorted-sample-id order (the order of :func:`_check_epoch`)."""
    if text_hash is None:
        return None
    hashes = np.asarray(text_hash, dtype=np.uint64)
    if hashes.shape != np.shape(sample_ids):
        raise ValueError(f"{where}: text_hash must hold one value per sample id")
    return hashes[np.argsort(np.asarray(sample_ids), kind="stable")]


def _epoch_table(
    epoch: int, ids: np.ndarray, labels: np.ndarray, z: np.ndarray, hashes: np.ndarray | None
) -> pa.Table:
    """One epoch's rows in the table's column types (``text_hash`` only when given)."""
    columns_new = {
        "sample_id": pa.array(ids, pa.int64()),
        "epoch": pa.array(np.full(len(ids), epoch, np.int32), pa.int32()),
        "gold": pa.array(labels.astype(np.int32), pa.int32()),
        "logits": pa.FixedSizeListArray.from_arrays(
            pa.array(z.reshape(-1), pa.float32()), z.shape[1]
        ),
    }
    if hashes is not None:
        columns_new["text_hash"] = pa.array(hashes, pa.uint64())
    return pa.table(columns_new)


def _with_earlier_epochs(
    path: Path,
    new: pa.Table,
    meta: dict[str, str],
    *,
    epoch: int,
    ids: np.ndarray,
    labels: np.ndarray,
    where: str,
) -> pa.Table:
    """The stored table's other epochs + ``new``, checked to hold the same samples, labels and
    texts; ``meta`` is checked against the stored metadata and takes its ``label_names`` and
    ``columns`` when not given again."""
    old = pq.read_table(path)
    stored = _metadata(old.schema, path)
    for key in ("mode", "num_classes", "task"):
        if stored[key] != meta[key]:
            raise ValueError(f"{where}: {key} is {meta[key]!r} but the table holds {stored[key]!r}")
    for key in ("label_names", "columns"):  # kept from the first epoch when not given again
        meta.setdefault(key, stored.get(key, ""))
        if not meta[key]:
            del meta[key]
    old = old.replace_schema_metadata(None).filter(pc.not_equal(old["epoch"], epoch))
    if ("text_hash" in old.column_names) != ("text_hash" in new.column_names):
        # a table begun without text hashes (or by an older tdmixup) stays without them
        old = old.drop_columns(["text_hash"]) if "text_hash" in old.column_names else old
        new = new.drop_columns(["text_hash"]) if "text_hash" in new.column_names else new
    if not old.num_rows:
        return new
    first = old.slice(0, 1)["epoch"][0]
    ref = old.filter(pc.equal(old["epoch"], first))
    _check_same_samples(
        ref["sample_id"].to_numpy(),
        ref["gold"].to_numpy().astype(np.int64),
        ids,
        labels,
        where,
    )
    if "text_hash" in old.column_names and "text_hash" in new.column_names:
        changed = ids[ref["text_hash"].to_numpy() != new["text_hash"].to_numpy()]
        if len(changed):
            raise ValueError(
                f"{where}: texts differ from the earlier epochs for sample ids {_few(changed)}"
            )
    table = pa.concat_tables([old, new.cast(old.schema)])
    if epoch < pc.max(old["epoch"]).as_py():
        table = table.sort_by([("epoch", "ascending"), ("sample_id", "ascending")])
    return table


def read_dynamics(path: str | os.PathLike[str]) -> TrainingDynamics:
    """Read a table written by :func:`append_epoch` into ``[E, N, C]`` arrays.

    Raises:
        ValueError: if an epoch lacks samples, or gold labels differ between epochs.
    """
    path = Path(path)
    table = pq.read_table(path)
    meta = _metadata(table.schema, path)
    num_classes = int(meta["num_classes"])
    ids = table["sample_id"].to_numpy()
    epochs = table["epoch"].to_numpy().astype(np.int64)
    gold = table["gold"].to_numpy().astype(np.int64)
    hashes = (
        table["text_hash"].to_numpy().astype(np.uint64)
        if "text_hash" in table.column_names
        else None
    )
    column = table["logits"].combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        flat = column.flatten().to_numpy()
    else:
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and not (lengths == num_classes).all():
            raise ValueError(
                f"{path}: every logits row must hold num_classes = {num_classes} values"
            )
        flat = pc.list_flatten(column).to_numpy()
    z = flat.astype(np.float32, copy=False).reshape(len(ids), num_classes)
    d_epoch, d_id = np.diff(epochs), np.diff(ids)
    if not ((d_epoch > 0) | ((d_epoch == 0) & (d_id > 0))).all():
        order = np.lexsort((ids, epochs))
        ids, epochs, gold, z = ids[order], epochs[order], gold[order], z[order]
        hashes = hashes[order] if hashes is not None else None
        repeated = ids[1:][(np.diff(epochs) == 0) & (np.diff(ids) == 0)]
        if len(repeated):
            raise ValueError(
                f"{path}: sample ids recorded twice in one epoch: {_few(np.unique(repeated))}"
            )
    unique_epochs, starts = np.unique(epochs, return_index=True)
    bounds = np.append(starts, len(ids))
    num_samples = int(bounds[1]) if len(unique_epochs) else 0
    for e in range(1, len(unique_epochs)):
        _check_same_samples(
            ids[:num_samples],
            gold[:num_samples],
            ids[bounds[e] : bounds[e + 1]],
            gold[bounds[e] : bounds[e + 1]],
            f"{path}, epoch {unique_epochs[e]}",
        )
    return TrainingDynamics(
        sample_ids=ids[:num_samples].copy(),
        gold=gold[:num_samples].copy(),
        logits=z.reshape(len(unique_epochs), num_samples, num_classes),
        epochs=unique_epochs,
        mode=meta["mode"],  # type: ignore[arg-type]
        task=meta["task"],
        text_hash=hashes[:num_samples].copy() if hashes is not None else None,
        label_names=tuple(json.loads(meta["label_names"])) if meta.get("label_names") else (),
        columns=meta.get("columns", ""),
    )


# --------------------------------------------------------------------------- Cartography


def export_cartography(
    dyn: TrainingDynamics, folder: str | os.PathLike[str], *, prefix: str = ""
) -> list[Path]:
    """Write Dataset Cartography's per-epoch jsonl logs: ``{prefix}dynamics_epoch_{e}.jsonl``.

    Each line is ``{"guid": id, "logits_epoch_{e}": [C floats], "gold": label}``. Files are
    numbered ``e = 0 … E−1`` by position, as Cartography's reader expects, whatever the epoch
    numbers in ``dyn.epochs``. Logits are written with 15 decimals (float32 round trip).

    Returns:
        The ``E`` paths written (each written atomically).
    """
    folder = Path(folder)
    paths = []
    for e in range(len(dyn.epochs)):
        frame = pd.DataFrame(
            {
                "guid": dyn.sample_ids,
                f"logits_epoch_{e}": dyn.logits[e].astype(np.float64).tolist(),
                "gold": dyn.gold,
            }
        )
        path = folder / f"{prefix}dynamics_epoch_{e}.jsonl"
        with atomic_output(path) as tmp:
            frame.to_json(tmp, orient="records", lines=True, double_precision=15)
        paths.append(path)
    return paths


def _read_cartography_file(path: Path, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pa_json.read_json(path)
    key = f"logits_epoch_{epoch}"
    missing = {"guid", "gold", key} - set(table.column_names)
    if missing:
        raise ValueError(
            f"{path}: missing field(s) {sorted(missing)}; Cartography lines hold guid, {key}, gold"
        )
    try:
        ids = table["guid"].cast(pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ValueError(
            f"{path}: guid values must be integers (tdmixup keys samples by an int64 id): {err}"
        ) from err
    column = table[key].combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) == 0 or column.null_count or (lengths != lengths[0]).any():
        raise ValueError(f"{path}: every line needs a {key} list of the same length")
    logits = pc.list_flatten(column).to_numpy().reshape(len(ids), int(lengths[0]))
    return ids, table["gold"].to_numpy(), logits


def read_cartography(
    folder: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    mode: DynamicsMode = "train_pass",
    task: str = "",
) -> TrainingDynamics:
    """Read Dataset Cartography's ``{prefix}dynamics_epoch_{e}.jsonl`` (or ``.json``) logs.

    Args:
        folder: folder holding one file per epoch.
        prefix: file-name prefix before ``dynamics_epoch_`` (e.g. ``"TREC_"``). ``None`` finds
            it, and fails if the folder holds logs with several prefixes.
        mode: how the logits were recorded; Cartography's code logs the training pass.
        task: task name to attach.
    """
    folder = Path(folder)
    found: dict[str, dict[int, Path]] = {}
    for path in folder.iterdir():
        match = _CARTOGRAPHY_FILE.match(path.name)
        if match and (prefix is None or match["prefix"] == prefix):
            found.setdefault(match["prefix"], {})[int(match["epoch"])] = path
    if len(found) != 1:
        what = f"prefixes {sorted(found)}; pass prefix=" if found else "no files"
        raise ValueError(
            f"{folder}: expected {prefix or ''}dynamics_epoch_<e>.jsonl files of one prefix; "
            f"found {what}"
        )
    files = next(iter(found.values()))
    epochs = np.array(sorted(files), dtype=np.int64)
    read = [
        _check_epoch(*_read_cartography_file(files[e], e), str(files[e])) for e in epochs.tolist()
    ]
    ref_ids, ref_gold, ref_logits = read[0]
    for epoch, (ids, gold, logits) in zip(epochs[1:].tolist(), read[1:], strict=True):
        _check_same_samples(ref_ids, ref_gold, ids, gold, str(files[epoch]))
        if logits.shape[1] != ref_logits.shape[1]:
            raise ValueError(
                f"{files[epoch]}: {logits.shape[1]} classes, "
                f"but epoch {epochs[0]} has {ref_logits.shape[1]}"
            )
    stacked = np.stack([logits for _, _, logits in read])
    return TrainingDynamics(ref_ids, ref_gold, stacked, epochs, mode, task)


# --------------------------------------------------------------------------- statistics


def compute_statistics(dyn: TrainingDynamics) -> pd.DataFrame:
    """All per-sample statistics of a :class:`TrainingDynamics`, one row per sample.

    Returns:
        DataFrame indexed by ``sample_id`` (ascending) with columns ``gold``, ``confidence``,
        ``variability``, ``correctness`` (fraction), ``forgetting_events``, ``aum`` and
        ``prediction`` (argmax at the last epoch), ``prediction_probability`` (its softmax
        probability at the last epoch) and, when the table holds them, ``text_hash`` (the
        fingerprint of each row's text, so a statistics file can be checked against data too).
        ``attrs`` holds ``num_epochs``, ``mode``, ``task`` and ``label_names`` (when recorded).
    """
    stats = pd.DataFrame(
        per_sample_statistics(dyn.logits, dyn.gold),
        index=pd.Index(dyn.sample_ids, name="sample_id"),
    )
    if len(dyn.epochs):
        last = np.asarray(dyn.logits[-1], dtype=np.float64)
        z = np.exp(last - last.max(axis=1, keepdims=True))
        stats["prediction_probability"] = z.max(axis=1) / z.sum(axis=1)
    if dyn.text_hash is not None:
        stats["text_hash"] = dyn.text_hash
    stats.attrs.update(num_epochs=int(np.shape(dyn.logits)[0]), mode=dyn.mode, task=dyn.task)
    if dyn.label_names:
        stats.attrs["label_names"] = list(dyn.label_names)
    return stats
