"""Tokenise once, then batch with dynamic padding, length grouping and exact multi-process sharding.

* :func:`tokenize` turns a schema :class:`datasets.Dataset` into a :class:`TokenizedSet`
  (unpadded token arrays keyed by ``sample_id``), in one batched call of a fast tokenizer.
* :func:`epoch_batches` plans one epoch of training batches for one process: a seeded shuffle,
  then (optionally) length grouping inside mega-batches (rows in random order inside each
  batch, see :func:`epoch_order`), then global batches of ``batch_size`` rows that are split
  over the ``world_size`` processes. Every sample appears
  exactly once per epoch over all processes. No sample is repeated to even out the processes:
  when a global batch has fewer rows than processes, the missing slots get a dummy row with
  loss weight 0. Row weights are ``world_size / global_batch_rows`` so that
  ``(weight * per_sample_loss).sum()`` averaged over processes (DDP) is exactly the mean loss
  of the global batch.
* :func:`inference_batches` shards a set for prediction (each process every ``world_size``-th
  row of the length-sorted set, so every process gets as many tokens; results are gathered
  by ``sample_id``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from tdmixup.data.schema import DataError, TaskSpec, is_classification


@dataclass(frozen=True)
class TokenizedSet:
    """Unpadded token ids of N examples.

    Attributes:
        sample_ids: ``[N]`` int64 stable ids.
        labels: ``[N]`` int64 gold labels.
        input_ids: N int32 arrays (:data:`ID_DTYPE`); single and pair tasks ``[L_i]``, multiple
            choice ``[K, L_i]`` (endings padded to the longest ending of that example).
        token_type_ids: like ``input_ids`` in int8, or None when the tokenizer has none (RoBERTa).
        lengths: ``[N]`` tokens per example (longest ending for multiple choice).
        num_choices: K for multiple choice, 0 for single and pair tasks.
        pad_token_id: the tokenizer's pad id.
    """

    sample_ids: np.ndarray
    labels: np.ndarray
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    lengths: np.ndarray
    num_choices: int
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.sample_ids)

    def positions_of(
        self, sample_ids: Sequence[int] | np.ndarray, *, source: str = "subset"
    ) -> np.ndarray:
        """Row positions of the given ids; a clear error names ids that are not in this set."""
        wanted = np.asarray(sample_ids, dtype=np.int64)
        order = np.argsort(self.sample_ids, kind="stable")
        pos = np.searchsorted(self.sample_ids, wanted, sorter=order)
        pos = np.clip(pos, 0, max(len(order) - 1, 0))
        found = order[pos] if len(order) else pos
        missing = wanted[self.sample_ids[found] != wanted] if len(order) else wanted
        if len(missing):
            raise DataError(
                f"{source}: {len(missing)} of {len(wanted)} sample ids are not in this dataset "
                f"(first: {missing[:5].tolist()}); was it made from another dataset or train size?"
            )
        return found

    def subset(
        self, sample_ids: Sequence[int] | np.ndarray, *, source: str = "subset"
    ) -> TokenizedSet:
        """The examples with these ids, in the given order."""
        pos = self.positions_of(sample_ids, source=source)
        return TokenizedSet(
            sample_ids=self.sample_ids[pos],
            labels=self.labels[pos],
            input_ids=[self.input_ids[i] for i in pos],
            token_type_ids=None
            if self.token_type_ids is None
            else [self.token_type_ids[i] for i in pos],
            lengths=self.lengths[pos],
            num_choices=self.num_choices,
            pad_token_id=self.pad_token_id,
        )

    def with_labels(self, labels: np.ndarray) -> TokenizedSet:
        """The same examples with other labels (``[N]``), e.g. threshold samples or noise."""
        return TokenizedSet(
            self.sample_ids,
            np.asarray(labels, dtype=np.int64),
            self.input_ids,
            self.token_type_ids,
            self.lengths,
            self.num_choices,
            self.pad_token_id,
        )


TOKENIZE_CHUNK = 8192
"""Rows tokenised per call: the tokenizer's Python lists of one chunk are turned into compact
arrays before the next, so the transient lists never hold the whole set."""
ID_DTYPE = np.int32  # token ids (vocabularies stay far below 2**31)
TYPE_DTYPE = np.int8  # token type ids (segment 0 or 1)


def tokenize(dataset: Any, spec: TaskSpec, tokenizer: Any, *, max_length: int) -> TokenizedSet:
    """Tokenise a schema dataset once, in chunks of :data:`TOKENIZE_CHUNK` rows.

    Single sentences: ``[CLS] a [SEP]`` (one segment: token type 0 throughout); pairs:
    ``[CLS] a [SEP] b [SEP]``; multiple choice: ``[CLS] ctx [SEP] ending_k [SEP]``.
    Each row is stored in the smallest dtype (int32 ids, int8 token types; no attention mask,
    :func:`collate` makes it). On 100k SNLI pairs the peak RSS grew by 228 MiB instead of the
    int64 version's 1,125 MiB (``benchmarks/scale/results/tokenize_memory.json``).
    """
    cols = dataset.to_dict() if hasattr(dataset, "to_dict") else dict(dataset)
    sample_ids = np.asarray(cols["sample_id"], dtype=np.int64)
    labels = np.asarray(cols["label"], dtype=np.int64)
    if is_classification(spec.kind):
        second = list(cols["text_b"]) if spec.kind == "pair" else None
        ids, tts = _encode(tokenizer, list(cols["text_a"]), second, max_length)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        k = 0
    else:
        endings = cols["endings"]
        k = len(endings[0]) if len(endings) else 0
        ctx = [c for c in cols["context"] for _ in range(k)]
        flat = [e for row in endings for e in row]
        flat_ids, flat_tts = _encode(tokenizer, ctx, flat, max_length)
        ids = _group_endings(flat_ids, k, tokenizer.pad_token_id, ID_DTYPE)
        tts = None if flat_tts is None else _group_endings(flat_tts, k, 0, TYPE_DTYPE)
        lengths = np.fromiter((x.shape[1] for x in ids), dtype=np.int64, count=len(ids))
    return TokenizedSet(sample_ids, labels, ids, tts, lengths, k, int(tokenizer.pad_token_id or 0))


def _encode(
    tokenizer: Any, first: list[str], second: list[str] | None, max_length: int
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """``(input_ids, token_type_ids or None)`` of each text (``second`` None) or text pair, one
    compact array per row."""
    ids: list[np.ndarray] = []
    tts: list[np.ndarray] | None = None
    for start in range(0, len(first), TOKENIZE_CHUNK):
        end = start + TOKENIZE_CHUNK
        enc = tokenizer(
            first[start:end],
            *([] if second is None else [second[start:end]]),
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
        )
        ids.extend(np.asarray(x, dtype=ID_DTYPE) for x in enc["input_ids"])
        if "token_type_ids" in enc:
            tts = [] if tts is None else tts
            tts.extend(np.asarray(x, dtype=TYPE_DTYPE) for x in enc["token_type_ids"])
    return ids, tts


def _group_endings(
    rows: list[np.ndarray], k: int, pad: int, dtype: type[np.generic]
) -> list[np.ndarray]:
    out = []
    for i in range(0, len(rows), k):
        group = rows[i : i + k]
        arr = np.full((k, max(len(r) for r in group)), pad, dtype=dtype)
        for j, r in enumerate(group):
            arr[j, : len(r)] = r
        out.append(arr)
    return out


def collate(
    data: TokenizedSet, positions: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, torch.Tensor]:
    """Pad the rows at ``positions`` to the longest one.

    Returns ``input_ids``/``attention_mask``/(``token_type_ids``) ``[B, L]`` (MC ``[B, K, L]``),
    ``labels`` ``[B]``, ``sample_id`` ``[B]`` and ``weight`` ``[B]`` (1.0 when not given).
    """
    b = len(positions)
    length = int(data.lengths[positions].max())
    shape = (b, data.num_choices, length) if data.num_choices else (b, length)
    ids = np.full(shape, data.pad_token_id, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.int64)
    tts = np.zeros(shape, dtype=np.int64) if data.token_type_ids is not None else None
    for row, p in enumerate(positions):
        x = data.input_ids[p]
        n = x.shape[-1]
        ids[row, ..., :n] = x
        mask[row, ..., :n] = x != data.pad_token_id if data.num_choices else 1
        if tts is not None and data.token_type_ids is not None:
            tts[row, ..., :n] = data.token_type_ids[p]
    batch = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(data.labels[positions]),
        "sample_id": torch.from_numpy(data.sample_ids[positions]),
        "weight": torch.from_numpy(
            np.ones(b, np.float32) if weights is None else weights.astype(np.float32)
        ),
    }
    if tts is not None:
        batch["token_type_ids"] = torch.from_numpy(tts)
    return batch


@dataclass(frozen=True)
class PlannedBatch:
    """One process's share of one global batch: row positions and their loss weights."""

    positions: np.ndarray
    weights: np.ndarray


def epoch_order(
    lengths: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    megabatch_factor: int = 50,
    min_megabatches: int = 8,
    shuffle_rows: bool = True,
    min_rows: int = 1,
) -> list[np.ndarray]:
    """Global batches (positions) of one epoch: seeded shuffle, optional length grouping.

    Length grouping sorts each mega-batch of shuffled rows by length, cuts it into batches,
    shuffles the order of all batches and (``shuffle_rows``) the rows inside each batch, so
    padding shrinks while the data order and the MixUp partners stay random:

    * a mega-batch holds ``batch_size × megabatch_factor`` rows, but at most
      ``1 / min_megabatches`` of the set (rounded up to whole batches). Two rows can share a
      batch again next epoch only if they land in the same mega-batch again, so on a small set
      (a 495-row region) the rows a sample is batched with are re-drawn every epoch (the
      share of batch-mates met again next epoch falls from 47 % to 9 % on real SNLI lengths,
      ``benchmarks/partner_randomness.py``); sets of ``≥ min_megabatches × megabatch_factor``
      batches keep the full mega-batch and its padding;
    * inside a batch the rows are in random order, not longest first, so TDMixUp's row i ×
      row i pairing (:mod:`tdmixup.strategies.step`) does not pair samples by their length rank, and
      the processes of a multi-process run get equally long shares. Order inside a batch costs no
      padding.

    ``min_megabatches=1, shuffle_rows=False`` gives the earlier plan (one length-sorted block of
    up to 800 rows, longest row first), kept for measurements. Deterministic for a given
    ``(seed, epoch)``; without grouping it is the seeded permutation cut into batches.
    ``min_rows = 2`` (strategies with in-batch MixUp partners) joins a last batch of one row to
    the batch before it, so that no row is left without a partner.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    if not group_by_length:
        return _join_short_last(
            [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)], min_rows
        )
    n_batches = -(-len(perm) // batch_size)
    mega = batch_size * max(1, min(megabatch_factor, -(-n_batches // max(min_megabatches, 1))))
    batches: list[np.ndarray] = []
    for i in range(0, len(perm), mega):
        chunk = perm[i : i + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    batches = _join_short_last(batches, min_rows)
    order = rng.permutation(len(batches))
    if not shuffle_rows:
        return [batches[i] for i in order]
    keys = rng.random(len(perm))
    return [b[np.argsort(keys[b], kind="stable")] for b in (batches[i] for i in order)]


def _join_short_last(batches: list[np.ndarray], min_rows: int) -> list[np.ndarray]:
    """``batches`` with a last batch of fewer than ``min_rows`` rows joined to the one before."""
    if len(batches) > 1 and len(batches[-1]) < min_rows:
        return [*batches[:-2], np.concatenate(batches[-2:])]
    return batches


Grouping = Literal["trainer", "random_partners"]
"""How much length grouping a plan does (:data:`GROUPING_MIN_MEGABATCHES`):

* ``"trainer"`` — Hugging Face ``Trainer``'s ``group_by_length``: mega-batches of 50 batches, or
  a quarter of the set when that is smaller; for steps whose partners do not depend on who shares
  a batch (``none``; ``tdmixup`` and ``random_pairs`` at the [CLS] feature);
* ``"random_partners"`` — mega-batches of at most 1/8 of the set, so the rows a sample is batched
  with (its ``mixup``/``manifold``/``kong`` partners) are re-drawn every epoch.
"""

GROUPING_MIN_MEGABATCHES: dict[str, int] = {"trainer": 4, "random_partners": 8}
"""Fewest mega-batches per set of each :data:`Grouping` (``epoch_order(min_megabatches=...)``)."""


def shard_batch(
    global_batch: np.ndarray, *, world_size: int, rank: int, min_rows: int = 1
) -> PlannedBatch:
    """This process's rows of a global batch (sizes differ by at most 1 between processes).

    A process left without a row gets one dummy row (the batch's first) with weight 0, so that
    every process runs the same number of steps (DDP needs it) without any sample counted twice.
    ``min_rows = 2`` (strategies that draw MixUp partners among a process's rows) splits a small
    global batch over fewer processes, each with at least 2 rows, rather than leave a process one
    row that could only be mixed with itself; only a global batch of one row stays alone.
    """
    g = len(global_batch)
    parts = max(1, min(world_size, g // max(min_rows, 1)))
    part = np.array_split(global_batch, parts)[rank] if rank < parts else global_batch[:0]
    if len(part) == 0:
        return PlannedBatch(global_batch[:1], np.zeros(1, np.float32))
    return PlannedBatch(part, np.full(len(part), world_size / g, np.float32))


def epoch_batches(
    lengths: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    world_size: int = 1,
    rank: int = 0,
    group_by_length: bool = True,
    grouping: Grouping = "random_partners",
    min_rows: int = 1,
) -> list[PlannedBatch]:
    """This process's batches for one epoch (see module docstring); ``grouping`` sets the
    mega-batch size (:data:`Grouping`), ``min_rows`` goes to :func:`shard_batch`."""
    return [
        shard_batch(b, world_size=world_size, rank=rank, min_rows=min_rows)
        for b in epoch_order(
            lengths,
            batch_size=batch_size,
            seed=seed,
            epoch=epoch,
            group_by_length=group_by_length,
            min_megabatches=GROUPING_MIN_MEGABATCHES[grouping],
            min_rows=min_rows,
        )
    ]


def cycled_batches(
    lengths: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    epoch: int,
    world_size: int = 1,
    rank: int = 0,
    group_by_length: bool = True,
    grouping: Grouping = "random_partners",
    min_rows: int = 1,
) -> list[PlannedBatch]:
    """``steps`` batches from a set that is re-shuffled and repeated as often as needed (the
    shorter loader of TDMixUp cycles; each cycle is a fresh seeded permutation)."""
    out: list[PlannedBatch] = []
    cycle = 0
    while len(out) < steps:
        out.extend(
            epoch_batches(
                lengths,
                batch_size=batch_size,
                seed=seed,
                epoch=epoch * 1000 + cycle,
                world_size=world_size,
                rank=rank,
                group_by_length=group_by_length,
                grouping=grouping,
                min_rows=min_rows,
            )
        )
        cycle += 1
    return out[:steps]


def inference_batches(
    lengths: np.ndarray, *, batch_size: int, world_size: int = 1, rank: int = 0
) -> Iterator[np.ndarray]:
    """Positions for prediction: sorted by length (least padding), this process's strided shard.

    Dealing the sorted rows out in turn (not in contiguous slices) gives every process the same
    mix of long and short inputs, so no process waits for one that got all the long ones.
    """
    order = np.argsort(-lengths, kind="stable")
    shard = order[rank::world_size]
    for i in range(0, len(shard), batch_size):
        yield shard[i : i + batch_size]
