"""Record training dynamics from a Hugging Face :class:`~transformers.Trainer` into tdmixup's table.

Two lines in an existing Trainer script (the second before ``trainer.train()``)::

    from tdmixup import DynamicsCallback
    DynamicsCallback.attach(trainer, "dynamics.parquet", mode="epoch_end")

The training dataset needs an integer ``sample_id`` column, unique per row, e.g.
``train_ds = train_ds.add_column("sample_id", list(range(len(train_ds))))``. After training,
:func:`tdmixup.dynamics.table.read_dynamics` reads the table (one row per sample and epoch, epochs
numbered from 0) and :func:`tdmixup.dynamics.table.compute_statistics` gives the data map.

Modes (see :mod:`tdmixup.dynamics.table`):

* ``"epoch_end"`` (the paper's Eq. 1): after each epoch, one inference pass over the whole
  training set with dropout off, through ``trainer.prediction_step`` — the logits equal those of
  ``trainer.predict(train_ds)`` at that point. The pass leaves the RNG state as it found it, so
  recording does not change the training run.
* ``"train_pass"`` (what Dataset Cartography records): the logits of each sample's training
  forward pass (dropout on, before that step's update), captured without extra compute.

Both modes can be recorded in one run: attach two callbacks with different paths.

How the Trainer is made to keep the ids (``attach`` does all of it):

1. ``sample_id`` is added to the Trainer's ``_signature_columns``, so ``remove_unused_columns``
   (the default) keeps it.
2. ``trainer.data_collator`` is wrapped: the wrapper strips ``sample_id`` from the rows, calls the
   original collator, and adds one ``[B, 2]`` int64 tensor of ``(sample_id, gold)`` under a private
   key. The gold label is the collated batch's label (``trainer.label_names``, then ``labels``).
3. A forward pre-hook on the unwrapped model pops that key before ``forward`` (so any
   ``compute_loss``, ``prediction_step`` or user ``model(**batch)`` keeps working), and a forward
   hook reads ``logits`` (``[B, C]`` for sequence classification, ``[B, K]`` for multiple choice).
4. At each epoch end every process gathers its records (``accelerate.utils.gather_object``); they
   are de-duplicated by sample id (distributed samplers repeat a few samples to even out the last
   batch), checked to cover every row once, and the main process appends the epoch with
   :func:`tdmixup.dynamics.table.append_epoch`.

Caveats:

* A fresh run (``global_step == 0`` at train start) replaces an existing table at ``path``; a run
  resumed from a checkpoint keeps the earlier epochs and re-records from the resumed epoch on.
* ``train_pass`` cannot record an epoch that was only partly trained (resumed mid-epoch, or cut by
  ``max_steps``): it is skipped with a warning. ``dataloader_drop_last=True`` is refused.
* Gradient accumulation needs nothing special: every micro-batch is recorded; samples in later
  micro-batches of an optimizer step see the same weights as the earlier ones.
* Sample order is irrelevant (rows are keyed by id), so shuffling and the Trainer's
  ``group_by_length`` sampler work unchanged.
* A subclass whose ``training_step`` calls a different module than ``trainer.model`` is not seen.
* The key's pre-hook stays on the model after training (``predict`` / ``evaluate`` on sets with ids
  need it); the recording hook is removed at train end, so the model holds no reference to the
  trainer.
* Relies on the Trainer internals ``_set_signature_columns_if_needed`` / ``_signature_columns``
  and ``_wrap_model``; tested with transformers 5.24 and accelerate 1.15, on one and two CPU
  processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from tdmixup.core.config import DynamicsMode
from tdmixup.dynamics.fingerprint import DataFingerprint, text_hashes
from tdmixup.dynamics.table import append_epoch

logger = logging.getLogger(__name__)

_BATCH_KEY = "tdmixup_sample_ids_gold"
"""Private batch key: an int64 ``[B, 2]`` tensor of ``(sample_id, gold)``; gold −1 when absent."""

_MODES = ("epoch_end", "train_pass")
_STASH = threading.local()  # per thread (nn.DataParallel runs replicas in threads)


# --------------------------------------------------------------------------- batches


class _IdCollator:
    """Wrap a data collator: keep each row's sample id and the batch's gold labels beside the batch.

    Rows without the id column pass through unchanged (e.g. an eval set without ids). A module-level
    class, so it pickles into ``DataLoader`` workers.
    """

    def __init__(self, collator: Any, column: str, label_names: Sequence[str]) -> None:
        self.collator = collator
        self.column = column
        self.label_names = tuple(label_names)

    def __call__(self, features: list[Any]) -> Any:
        has_id = [isinstance(f, Mapping) and self.column in f for f in features]
        if not any(has_id):
            return self.collator(features)
        if not all(has_id):
            raise ValueError(
                f"some rows of this batch have a '{self.column}' and some do not; "
                "every row of the training set needs one"
            )
        ids = [_as_int(f[self.column], self.column) for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != self.column} for f in features])
        if not isinstance(batch, MutableMapping):
            raise TypeError(
                "DynamicsCallback needs a data collator that returns a dict; "
                f"got {type(batch).__name__}"
            )
        gold = _batch_gold(batch, self.label_names, len(ids))
        batch[_BATCH_KEY] = torch.stack([torch.tensor(ids, dtype=torch.int64), gold], dim=1)
        return batch


def _as_int(value: Any, column: str) -> int:
    item = value.item() if hasattr(value, "item") else value
    if not isinstance(item, int) or isinstance(item, bool):
        raise ValueError(
            f"'{column}' values must be integers; got {value!r} ({type(value).__name__})"
        )
    return item


def _batch_gold(batch: Mapping[str, Any], label_names: Sequence[str], size: int) -> torch.Tensor:
    """``[B]`` int64 class labels from the collated batch; −1 where there are none."""
    for name in (*label_names, "labels", "label", "label_ids"):
        value = batch.get(name)
        if value is not None:
            labels = torch.as_tensor(value)
            if (
                labels.shape == (size,)
                and not labels.is_floating_point()
                and not labels.is_complex()
            ):
                return labels.detach().to("cpu", torch.int64)
            break
    return torch.full((size,), -1, dtype=torch.int64)


def _ensure_pre_hook(model: torch.nn.Module) -> None:
    """Register :func:`_pop_ids` once per model (a deep copy keeps it); it stays, harmless, so later
    ``predict`` calls on batches with ids work."""
    if not any(hook is _pop_ids for hook in model._forward_pre_hooks.values()):
        model.register_forward_pre_hook(_pop_ids, with_kwargs=True)


def _pop_ids(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Forward pre-hook: take the private key out of the model inputs, remember it for this call."""
    _STASH.ids_gold = kwargs.pop(_BATCH_KEY, None)
    return args, kwargs


def _logits_of(output: Any, size: int) -> torch.Tensor:
    """The ``[B, C]`` logits in a model output (``ModelOutput``, dict, tuple or tensor)."""
    if isinstance(output, Mapping):
        logits = output.get("logits")
    elif isinstance(output, (tuple, list)):
        logits = next(
            (t for t in output if torch.is_tensor(t) and t.ndim == 2 and len(t) == size), None
        )
    else:
        logits = output
    if not torch.is_tensor(logits) or logits.ndim != 2 or len(logits) != size:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(
            f"DynamicsCallback expects classification logits [batch={size}, classes]; "
            f"the model output holds {shape}"
        )
    return logits


@contextlib.contextmanager
def _rng_preserved() -> Iterator[None]:
    """Restore the CPU (and initialised CUDA) RNG state afterwards: a DataLoader draws a seed."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        yield


def _check_id_column(dataset: Any, column: str) -> None:
    """Raise if a map-style training set visibly lacks the sample-id column."""
    how = (
        f"add one, e.g. dataset = dataset.add_column('{column}', list(range(len(dataset)))), "
        "or pass sample_id_column= the name of yours"
    )
    names = getattr(dataset, "column_names", None)
    if isinstance(names, list):
        if column not in names:
            raise ValueError(
                f"the training dataset has no '{column}' column (it has {names}); {how}"
            )
        return
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__getitem__"):
        return
    if hasattr(dataset, "__len__") and len(dataset) > 0:
        first = dataset[0]
        if isinstance(first, Mapping) and column not in first:
            raise ValueError(
                f"the training dataset's rows have no '{column}' key "
                f"(they have {sorted(first)}); {how}"
            )


def _dataset_fingerprint(
    dataset: Any,
    column: str,
    label_names: Sequence[str] | None,
    text_columns: Sequence[str] | None,
    model: Any,
) -> DataFingerprint | None:
    """Check a ``datasets.Dataset``'s ids (unique integers) before training, and fingerprint its
    rows: text hash per id, label names and text columns (None for other dataset types).

    Text columns default to every string (or list-of-string) column besides the id, in the
    dataset's order; label names to the label column's ``ClassLabel`` names, else the model's
    ``id2label`` unless it holds only ``LABEL_k`` placeholders."""
    import json

    names = getattr(dataset, "column_names", None)
    if not isinstance(names, list) or column not in names:
        return None
    ids = np.asarray(dataset[column])
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"'{column}' values must be integers; got dtype {ids.dtype}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        raise ValueError(
            f"the training dataset's '{column}' repeats {len(repeated)} id(s) "
            f"(first: {repeated[:5].tolist()}); every row needs its own id, e.g. "
            f"dataset = dataset.remove_columns('{column}').add_column('{column}', "
            "list(range(len(dataset))))"
        )
    features = getattr(dataset, "features", {}) or {}
    label_column = next((c for c in ("label", "labels") if c in names), None)
    if label_names is None and label_column is not None:
        label_names = getattr(features.get(label_column), "names", None)
    if label_names is None:
        id2label = dict(getattr(getattr(model, "config", None), "id2label", None) or {})
        given = [str(id2label[k]) for k in sorted(id2label)]
        if given and any(name != f"LABEL_{k}" for k, name in enumerate(given)):
            label_names = given
    if text_columns is None:
        text_columns = [c for c in names if c != column and _is_text(features.get(c))]
    hashes = None
    if text_columns:
        cols = {c: dataset[c] for c in text_columns}
        hashes = pd.Series(
            text_hashes(cols, fields=list(text_columns)), index=pd.Index(ids.astype(np.int64))
        )
    return DataFingerprint(
        hashes,
        label_names=tuple(label_names or ()),
        columns=json.dumps({"text_columns": list(text_columns or [])}),
    )


def _is_text(feature: Any) -> bool:
    """A ``datasets`` string column, or a list of strings (e.g. multiple-choice endings)."""
    dtype = getattr(feature, "dtype", None)
    if dtype in ("string", "large_string"):
        return True
    inner = getattr(feature, "feature", None)
    if inner is None and isinstance(feature, list) and feature:
        inner = feature[0]
    return getattr(inner, "dtype", None) in ("string", "large_string")


def _num_rows(dataset: Any) -> int | None:
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return None
    try:
        return len(dataset)
    except TypeError:
        return None


# --------------------------------------------------------------------------- callback


class DynamicsCallback(TrainerCallback):
    """Record per-sample training dynamics of a Hugging Face ``Trainer`` run.

    Use :meth:`attach`; the callback on its own (``trainer.add_callback``) cannot make the
    Trainer keep the sample ids and refuses to start.

    Args:
        path: Parquet file of the dynamics table (see :mod:`tdmixup.dynamics.table`).
        mode: ``"epoch_end"`` (inference pass after each epoch, paper Eq. 1) or ``"train_pass"``
            (logits seen during training, as Dataset Cartography).
        sample_id_column: integer column of the training set holding a unique id per row
            (checked before training starts for a ``datasets.Dataset``).
        task: task name stored with the table.
        label_names: class names in index order, stored with the table (so a data map names
            the classes); default the label column's ``ClassLabel`` names, else the model's
            ``id2label`` when it holds real names.
        text_columns: the columns whose text is hashed into the table's fingerprint (each row's
            text hash; ``tdmixup datamap --train-file`` then refuses another file); default every
            string column of the training set, in its order, e.g. premise, hypothesis.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: DynamicsMode = "epoch_end",
        sample_id_column: str = "sample_id",
        task: str = "",
        label_names: Sequence[str] | None = None,
        text_columns: Sequence[str] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
        self.path = Path(path)
        self.mode: DynamicsMode = mode
        self.sample_id_column = sample_id_column
        self.task = task
        self.label_names = tuple(label_names) if label_names is not None else None
        self.text_columns = tuple(text_columns) if text_columns is not None else None
        self._fingerprint: DataFingerprint | None = None
        self._trainer: Any = None
        self._hook_handle: Any = None
        self._records: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._epoch = 0
        self._partial = False
        self._recording = False

    @classmethod
    def attach(
        cls,
        trainer: Any,
        path: str | os.PathLike[str],
        *,
        mode: DynamicsMode = "epoch_end",
        sample_id_column: str = "sample_id",
        task: str = "",
        label_names: Sequence[str] | None = None,
        text_columns: Sequence[str] | None = None,
    ) -> DynamicsCallback:
        """Make ``trainer`` keep sample ids, hook its model, add the callback, and return it.

        Several callbacks (e.g. one per mode, each with its own ``path``) may be attached to
        one trainer if they share ``sample_id_column``.

        Raises:
            ValueError: if the training set lacks ``sample_id_column``, or another callback
                attached to this trainer uses a different id column.
        """
        callback = cls(
            path,
            mode=mode,
            sample_id_column=sample_id_column,
            task=task,
            label_names=label_names,
            text_columns=text_columns,
        )
        if trainer.train_dataset is not None:
            _check_id_column(trainer.train_dataset, sample_id_column)
        collator = trainer.data_collator
        if isinstance(collator, _IdCollator):
            if collator.column != sample_id_column:
                raise ValueError(
                    f"this trainer already records ids from '{collator.column}'; "
                    f"cannot also use '{sample_id_column}'"
                )
        else:
            trainer.data_collator = _IdCollator(collator, sample_id_column, trainer.label_names)
        trainer._set_signature_columns_if_needed()
        if sample_id_column not in trainer._signature_columns:
            trainer._signature_columns.append(sample_id_column)
        callback._trainer = trainer
        _ensure_pre_hook(trainer.accelerator.unwrap_model(trainer.model))
        callbacks = trainer.callback_handler.callbacks
        if any(isinstance(c, DynamicsCallback) for c in callbacks):
            callbacks.append(
                callback
            )  # one per mode/path is fine: skip add_callback's duplicate warning
        else:
            trainer.add_callback(callback)
        return callback

    # ------------------------------------------------------------------ hooks

    def _remove_forward_hook(self) -> None:
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None

    def _record_training_forward(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        """Forward hook: in ``train_pass`` mode keep the logits of every training forward pass."""
        if (
            self.mode != "train_pass"
            or not self._recording
            or not module.training
            or not torch.is_grad_enabled()
        ):
            return
        ids_gold = getattr(_STASH, "ids_gold", None)
        if ids_gold is None:
            raise ValueError(
                f"a training batch came without sample ids: the training dataset needs an integer "
                f"'{self.sample_id_column}' column (or pass sample_id_column=)"
            )
        logits = _logits_of(output, len(ids_gold))
        self._records.append((ids_gold.detach(), logits.detach().float()))

    # ------------------------------------------------------------------ events

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self._trainer
        if trainer is None:
            raise RuntimeError(
                "DynamicsCallback must be attached with "
                "DynamicsCallback.attach(trainer, path, ...), which also makes the Trainer keep "
                "the sample ids; trainer.add_callback alone cannot"
            )
        if args.dataloader_drop_last:
            raise ValueError(
                "DynamicsCallback records every training sample each epoch, "
                "but dataloader_drop_last=True drops the last partial batch; "
                "set dataloader_drop_last=False"
            )
        _check_id_column(trainer.train_dataset, self.sample_id_column)
        model = trainer.accelerator.unwrap_model(trainer.model)
        self._fingerprint = _dataset_fingerprint(
            trainer.train_dataset, self.sample_id_column, self.label_names, self.text_columns, model
        )
        _ensure_pre_hook(model)  # model_init builds a new model in train()
        self._remove_forward_hook()
        if self.mode == "train_pass":  # held only while training: the hook references the trainer
            self._hook_handle = model.register_forward_hook(self._record_training_forward)
        self._records, self._recording = [], False
        if state.global_step == 0 and trainer.is_world_process_zero() and self.path.exists():
            logger.warning("DynamicsCallback: a new run replaces the dynamics table %s", self.path)
            self.path.unlink()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._remove_forward_hook()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = float(state.epoch or 0.0)
        self._epoch = math.floor(epoch + 1e-9)
        self._partial = not math.isclose(epoch, self._epoch, abs_tol=1e-9)  # resumed mid-epoch
        self._records, self._recording = [], True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._recording = False
        partial = self._partial or not math.isclose(
            float(state.epoch or 0.0), self._epoch + 1, abs_tol=1e-6
        )
        if self.mode == "train_pass":
            records, self._records = self._records, []
            if partial:
                logger.warning(
                    "DynamicsCallback: epoch %d was only partly trained "
                    "(resumed mid-epoch or cut by max_steps); "
                    "train_pass logits of it are not recorded",
                    self._epoch,
                )
                return
        else:
            records = self._predict_train_set()
        ids, gold, logits = self._gather(records)
        self._check_complete(ids, gold)
        if self._trainer.is_world_process_zero():
            append_epoch(
                self.path,
                epoch=self._epoch,
                sample_ids=ids,
                gold=gold,
                logits=logits,
                mode=self.mode,
                task=self.task,
                **(self._fingerprint.append_kwargs(ids) if self._fingerprint is not None else {}),
            )

    # ------------------------------------------------------------------ epoch end

    def _predict_train_set(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Logits of every training sample, dropout off, via ``trainer.prediction_step``."""
        trainer = self._trainer
        loader = trainer.get_test_dataloader(trainer.train_dataset)
        model = trainer._wrap_model(trainer.model, training=False, dataloader=loader)
        optimizer: Any = getattr(trainer, "optimizer", None)
        was_training = model.training
        records = []
        with _rng_preserved():
            model.eval()
            if callable(getattr(optimizer, "eval", None)):
                optimizer.eval()  # schedule-free optimizers, as in Trainer.evaluation_loop
            try:
                for batch in loader:
                    ids_gold = (
                        batch.pop(_BATCH_KEY, None) if isinstance(batch, MutableMapping) else None
                    )
                    if ids_gold is None:
                        raise ValueError(
                            "a batch of the training set came without sample ids; "
                            f"the dataset needs an integer '{self.sample_id_column}' column"
                        )
                    _, logits, _ = trainer.prediction_step(model, batch, prediction_loss_only=False)
                    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
                    records.append(
                        (ids_gold.cpu(), _logits_of(logits, len(ids_gold)).float().cpu())
                    )
            finally:
                model.train(was_training)
                if callable(getattr(optimizer, "train", None)):
                    optimizer.train()
        return records

    def _gather(
        self, records: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Concatenate this process's records, gather all processes', keep each id's first row."""
        if records:
            ids_gold = torch.cat([r[0] for r in records]).cpu().numpy()
            local = [
                (ids_gold[:, 0], ids_gold[:, 1], torch.cat([r[1] for r in records]).cpu().numpy())
            ]
        else:
            local = []
        if self._trainer.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            local = gather_object(local)
        if not local:
            raise ValueError(f"epoch {self._epoch}: no training sample was recorded")
        ids, gold, logits = (np.concatenate([part[i] for part in local]) for i in range(3))
        ids, first = np.unique(ids, return_index=True)
        return ids, gold[first], logits[first]

    def _check_complete(self, ids: np.ndarray, gold: np.ndarray) -> None:
        expected = _num_rows(self._trainer.train_dataset)
        if expected is not None and len(ids) != expected:
            raise ValueError(
                f"epoch {self._epoch}: recorded {len(ids)} distinct sample ids "
                f"but the training set has {expected} "
                f"rows; '{self.sample_id_column}' must be unique per row"
                + (
                    " and every row must be trained on each epoch"
                    if self.mode == "train_pass"
                    else ""
                )
            )
        unlabelled = ids[gold < 0]
        if len(unlabelled):
            raise ValueError(
                f"epoch {self._epoch}: no integer class label in the batch for sample ids "
                f"{unlabelled[:5].tolist()}; "
                f"the collated batch needs one of {self._trainer.label_names} "
                "or 'labels' of shape [batch]"
            )
