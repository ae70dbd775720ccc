"""Batch planning, sharding and padding of :mod:`tdmixup.data.collate`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny import minilm_tokenizer, require_minilm, require_snli, snli_columns, snli_task  # noqa: E402
from tdmixup.data.collate import (  # noqa: E402
    TokenizedSet,
    collate,
    cycled_batches,
    epoch_batches,
    epoch_order,
    inference_batches,
    tokenize,
)
from tdmixup.data.schema import TaskSpec  # noqa: E402


def lengths_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(5, 60, size=n)


def plan_all_ranks(lengths: np.ndarray, world: int, batch_size: int, **kw: object) -> list[list]:
    return [
        epoch_batches(
            lengths, batch_size=batch_size, world_size=world, rank=r, seed=3, epoch=1, **kw
        )
        for r in range(world)
    ]


# --- epoch_batches: exact sharding ----------------------------------------------------------
@pytest.mark.parametrize("group_by_length", [True, False])
@pytest.mark.parametrize("batch_size", [4, 16])
@pytest.mark.parametrize("n", [1, 2, 5, 37, 100])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_epoch_batches_shard_every_sample_exactly_once(
    world: int, n: int, batch_size: int, group_by_length: bool
) -> None:
    lengths = lengths_of(n)
    plans = plan_all_ranks(lengths, world, batch_size, group_by_length=group_by_length)
    single = epoch_batches(
        lengths, batch_size=batch_size, seed=3, epoch=1, group_by_length=group_by_length
    )

    steps = {len(p) for p in plans}
    assert steps == {-(-n // batch_size)}, f"ranks disagree on the number of steps: {steps}"
    real = np.concatenate([b.positions[b.weights > 0] for p in plans for b in p])
    np.testing.assert_array_equal(np.sort(real), np.arange(n))

    losses = np.random.default_rng(1).random(n)
    for step in range(len(single)):
        shares = [p[step] for p in plans]
        assert all(len(b.positions) >= 1 for b in shares), (
            "every rank needs a row at every step (DDP)"
        )
        assert all(np.all(b.weights >= 0) for b in shares)
        # the global batch is the same whatever the number of processes ...
        global_rows = np.concatenate([b.positions[b.weights > 0] for b in shares])
        np.testing.assert_array_equal(np.sort(global_rows), np.sort(single[step].positions))
        # ... its weights sum to world_size ...
        assert sum(float(b.weights.sum()) for b in shares) == pytest.approx(world)
        # ... so that DDP's mean over ranks of Σ w·ℓ is the mean loss of the global batch
        ddp_loss = np.mean([float((b.weights * losses[b.positions]).sum()) for b in shares])
        assert ddp_loss == pytest.approx(losses[global_rows].mean(), rel=1e-6)


def test_shard_sizes_differ_by_at_most_one_row() -> None:
    plans = plan_all_ranks(lengths_of(37), 3, 16)
    for step in range(len(plans[0])):
        sizes = [int((p[step].weights > 0).sum()) for p in plans]
        assert max(sizes) - min(sizes) <= 1, sizes


def test_dummy_rows_have_weight_zero() -> None:
    # 5 samples, batch 4, 3 ranks: the second global batch has 1 row, so two ranks get a dummy
    plans = plan_all_ranks(lengths_of(5), 3, 4)
    last = [p[-1] for p in plans]
    assert sorted(len(b.positions) for b in last) == [1, 1, 1]
    assert sorted(float(b.weights[0]) for b in last) == [0.0, 0.0, 3.0]


@pytest.mark.parametrize(
    ("n", "batch_size", "world"), [(5, 4, 3), (37, 4, 2), (9, 8, 8), (33, 16, 8)]
)
def test_in_batch_partner_plans_give_every_process_two_rows_or_a_dummy(
    n: int, batch_size: int, world: int
) -> None:
    """Issue 21 (3): with ``min_rows=2`` (mixup, manifold, kong) no process gets exactly one real
    row (it could only be mixed with itself): small global batches go to fewer processes and a
    last batch of one row joins the batch before it; every sample is still seen once per epoch
    with weights that give the global batch's mean loss."""
    lengths = lengths_of(n)
    plans = [
        epoch_batches(
            lengths, batch_size=batch_size, seed=3, epoch=1, world_size=world, rank=r, min_rows=2
        )
        for r in range(world)
    ]
    assert len({len(p) for p in plans}) == 1
    real = np.concatenate([b.positions[b.weights > 0] for p in plans for b in p])
    np.testing.assert_array_equal(np.sort(real), np.arange(n))
    losses = np.random.default_rng(1).random(n)
    for step in range(len(plans[0])):
        shares = [p[step] for p in plans]
        counts = [int((b.weights > 0).sum()) for b in shares]
        assert all(c == 0 or c >= 2 for c in counts), counts
        global_rows = np.concatenate([b.positions[b.weights > 0] for b in shares])
        ddp_loss = np.mean([float((b.weights * losses[b.positions]).sum()) for b in shares])
        assert ddp_loss == pytest.approx(losses[global_rows].mean(), rel=1e-6)


def test_in_batch_partner_strategies_refuse_fewer_than_two_rows_per_process() -> None:
    """The multiple-choice batch of 4 on 8 GPUs: refused in one line naming the smallest batch."""
    from tdmixup.strategies.step import check_batch_for_processes

    for strategy in ("mixup", "manifold", "kong"):
        with pytest.raises(ValueError, match="at least 16"):
            check_batch_for_processes(strategy, 4, 8)  # type: ignore[arg-type]
        check_batch_for_processes(strategy, 16, 8)  # type: ignore[arg-type]
        check_batch_for_processes(strategy, 1, 1)  # type: ignore[arg-type]
    for strategy in ("none", "tdmixup", "random_pairs", "aum_saliency"):
        check_batch_for_processes(strategy, 4, 8)  # type: ignore[arg-type]


def test_epoch_order_is_deterministic_and_changes_with_epoch_and_seed() -> None:
    lengths = lengths_of(100)

    def flat(seed: int, epoch: int) -> np.ndarray:
        return np.concatenate(epoch_order(lengths, batch_size=4, seed=seed, epoch=epoch))

    np.testing.assert_array_equal(flat(7, 2), flat(7, 2))
    assert not np.array_equal(flat(7, 2), flat(7, 3))
    assert not np.array_equal(flat(7, 2), flat(8, 2))


def test_length_grouping_reduces_padding_on_snli() -> None:
    require_snli()
    require_minilm()
    tokenizer = minilm_tokenizer()
    cols = snli_columns(3000)
    lengths = np.array(
        [
            len(x)
            for x in tokenizer(cols["text_a"], cols["text_b"], truncation=True, max_length=128)[
                "input_ids"
            ]
        ]
    )

    def padded_tokens(group: bool) -> int:
        batches = epoch_order(lengths, batch_size=16, seed=0, epoch=0, group_by_length=group)
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    real = int(lengths.sum())
    grouped, plain = padded_tokens(True), padded_tokens(False)
    assert grouped - real < 0.25 * (plain - real), (real, grouped, plain)
    # the batch order stays random: batch lengths are not sorted
    maxima = [int(lengths[b].max()) for b in epoch_order(lengths, batch_size=16, seed=0, epoch=0)]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_cycled_batches_repeat_fresh_permutations() -> None:
    lengths = lengths_of(10)
    batches = cycled_batches(lengths, steps=7, batch_size=4, seed=0, epoch=2)
    assert len(batches) == 7
    first, second = batches[:3], batches[3:6]  # 10 rows at batch 4 → 3 batches per cycle
    for cycle in (first, second):
        np.testing.assert_array_equal(
            np.sort(np.concatenate([b.positions for b in cycle])), np.arange(10)
        )
    assert not np.array_equal(
        np.concatenate([b.positions for b in first]), np.concatenate([b.positions for b in second])
    )
    assert len(cycled_batches(lengths, steps=2, batch_size=4, seed=0, epoch=2)) == 2


@pytest.mark.parametrize("world", [1, 2, 3])
def test_inference_batches_cover_every_position_once(world: int) -> None:
    lengths = lengths_of(37)
    got = np.concatenate(
        [
            b
            for r in range(world)
            for b in inference_batches(lengths, batch_size=8, world_size=world, rank=r)
        ]
    )
    np.testing.assert_array_equal(np.sort(got), np.arange(37))


def test_inference_batches_give_every_process_as_many_tokens() -> None:
    lengths = lengths_of(200)
    tokens = [
        sum(
            int(lengths[b].sum())
            for b in inference_batches(lengths, batch_size=8, world_size=2, rank=r)
        )
        for r in range(2)
    ]
    assert abs(tokens[0] - tokens[1]) <= lengths.max(), (
        tokens
    )  # a contiguous split differs by ~half the range
    for b in inference_batches(lengths, batch_size=8, world_size=2, rank=1):
        assert np.all(
            np.diff(lengths[b]) <= 0
        )  # still length-sorted inside each batch (least padding)


# --- collate: padding and masks --------------------------------------------------------------
def test_collate_pairs_matches_the_tokenizers_own_padding() -> None:
    require_snli()
    require_minilm()
    tokenizer = minilm_tokenizer()
    cols = snli_columns(12)
    import datasets

    data = tokenize(datasets.Dataset.from_dict(cols), snli_task(), tokenizer, max_length=32)
    positions = np.array([5, 0, 11, 3])
    weights = np.array([0.25, 0.5, 0.0, 0.25])
    batch = collate(data, positions, weights)
    ref = tokenizer(
        [cols["text_a"][i] for i in positions],
        [cols["text_b"][i] for i in positions],
        truncation=True,
        max_length=32,
        padding=True,
        return_tensors="np",
    )
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(batch[key].numpy(), ref[key], err_msg=key)
    np.testing.assert_array_equal(batch["labels"].numpy(), np.asarray(cols["label"])[positions])
    np.testing.assert_array_equal(
        batch["sample_id"].numpy(), np.asarray(cols["sample_id"])[positions]
    )
    np.testing.assert_array_equal(batch["weight"].numpy(), weights.astype(np.float32))
    assert collate(data, positions)["weight"].tolist() == [1.0] * 4


def test_collate_multiple_choice_pads_every_ending() -> None:
    import datasets

    require_minilm()
    tokenizer = minilm_tokenizer()
    contexts = ["A man sits on a bench.", "Two dogs run"]
    endings = [
        [
            "He reads.",
            "He is reading a very long newspaper about the weather.",
            "No.",
            "He sleeps now.",
        ],
        ["fast.", "across the wide green field together.", "home", "away from the cat."],
    ]
    ds = datasets.Dataset.from_dict(
        {"sample_id": [10, 20], "context": contexts, "endings": endings, "label": [1, 3]}
    )
    spec = TaskSpec("toy_mc", "multiple_choice", ("0", "1", "2", "3"))
    data = tokenize(ds, spec, tokenizer, max_length=64)
    batch = collate(data, np.array([1, 0]))
    longest = max(
        len(tokenizer(c, e)["input_ids"])
        for c, row in zip(contexts, endings, strict=True)
        for e in row
    )
    assert batch["input_ids"].shape == (2, 4, longest)
    for row, q in enumerate([1, 0]):
        for k in range(4):
            ref = tokenizer(contexts[q], endings[q][k])
            n = len(ref["input_ids"])
            assert batch["input_ids"][row, k, :n].tolist() == ref["input_ids"]
            assert batch["token_type_ids"][row, k, :n].tolist() == ref["token_type_ids"]
            assert batch["attention_mask"][row, k].tolist() == [1] * n + [0] * (longest - n)
            assert set(batch["input_ids"][row, k, n:].tolist()) <= {tokenizer.pad_token_id}
    assert batch["labels"].tolist() == [3, 1]
    assert batch["sample_id"].tolist() == [20, 10]


def small_set() -> TokenizedSet:
    ids = [np.array([101, 7, 102]), np.array([101, 8, 9, 102]), np.array([101, 102])]
    return TokenizedSet(
        sample_ids=np.array([40, 10, 30]),
        labels=np.array([0, 1, 2]),
        input_ids=ids,
        token_type_ids=None,
        lengths=np.array([3, 4, 2]),
        num_choices=0,
        pad_token_id=0,
    )


def test_collate_without_token_type_ids() -> None:
    batch = collate(small_set(), np.array([2, 1]))
    assert "token_type_ids" not in batch
    assert batch["input_ids"].tolist() == [[101, 102, 0, 0], [101, 8, 9, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


# --- TokenizedSet.subset ---------------------------------------------------------------------
def test_subset_keeps_the_given_order() -> None:
    sub = small_set().subset([30, 40])
    assert sub.sample_ids.tolist() == [30, 40]
    assert sub.labels.tolist() == [2, 0]
    assert [x.tolist() for x in sub.input_ids] == [[101, 102], [101, 7, 102]]


def test_subset_error_names_the_missing_ids() -> None:
    with pytest.raises(
        ValueError,
        match=r"easy set: 2 of 3 sample ids are not in this dataset \(first: \[99, 5\]\)",
    ):
        small_set().subset([10, 99, 5], source="easy set")


def test_subset_of_an_empty_set_names_the_missing_ids() -> None:
    empty = small_set().subset([])
    assert len(empty) == 0 and len(empty.subset([])) == 0
    with pytest.raises(
        ValueError, match=r"1 of 1 sample ids are not in this dataset \(first: \[10\]\)"
    ):
        empty.subset([10])


# --- randomness of the planned batches (MixUp partners) ---------------------------------------
def lengths_only(lengths: np.ndarray) -> TokenizedSet:
    """A set that has lengths and nothing else (all the batch planner reads)."""
    n = len(lengths)
    return TokenizedSet(
        sample_ids=np.arange(n),
        labels=np.zeros(n, np.int64),
        input_ids=[],
        token_type_ids=None,
        lengths=np.asarray(lengths),
        num_choices=0,
        pad_token_id=0,
    )


def _regions() -> tuple[TokenizedSet, TokenizedSet]:
    rng = np.random.default_rng(0)
    easy, amb = (
        lengths_only(np.clip(rng.lognormal(np.log(25), 0.3, 495).astype(np.int64), 8, 80))
        for _ in range(2)
    )
    return easy, amb


def test_length_grouping_keeps_mixup_partners_random() -> None:
    """Two 495-row regions with varied lengths, batch 16, the loop's plans over 4 epochs.

    The earlier plan sorted a whole region as one block, longest row first: 47 % of the pairs
    sharing a batch shared one again the next epoch (random batches: 3 %), and row i of the easy
    batch met row i of the ambiguous batch by length rank (r ≈ 0.4 with ties). In-batch partners
    (``manifold``) get batch-mates re-drawn every epoch; TDMixUp's row-i pairs (at [CLS], with
    the Trainer's larger mega-batches) stay unmatched by length rank."""
    from tdmixup.core.config import TrainConfig
    from tdmixup.data.batch_stats import padding_fraction, paired_length_correlation, reoccurrence
    from tdmixup.training.planning import plan_epoch

    easy, amb = _regions()
    in_batch = [
        plan_epoch([easy], TrainConfig(seed=1), epoch, 1, 0, 16, strategy="manifold")
        for epoch in range(4)
    ]
    mates = [[step[0].positions for step in plan] for plan in in_batch]
    again = [reoccurrence(mates[e], mates[e + 1], 495) for e in range(3)]
    assert max(again) < 0.15, again
    plans = [
        plan_epoch([easy, amb], TrainConfig(seed=1), epoch, 1, 0, 16, strategy="tdmixup")
        for epoch in range(4)
    ]
    easy_plans = [[step[0].positions for step in plan] for plan in plans]
    r = [
        paired_length_correlation(
            easy.lengths, easy_plans[e], amb.lengths, [step[1].positions for step in plans[e]]
        )
        for e in range(4)
    ]
    assert max(abs(x) for x in r) < 0.15, r
    # and most of the padding saving is kept
    plain = [
        b.positions
        for b in epoch_batches(easy.lengths, batch_size=16, seed=1, epoch=0, group_by_length=False)
    ]
    for plan in (mates[0], easy_plans[0]):
        assert padding_fraction(easy.lengths, plan) < 0.6 * padding_fraction(easy.lengths, plain)


@pytest.mark.parametrize(
    ("strategy", "mix_at", "grouping"),
    [
        ("none", "cls", "trainer"),
        ("tdmixup", "cls", "trainer"),
        ("random_pairs", "cls", "trainer"),
        ("tdmixup", "embeddings", "random_partners"),
        ("mixup", "cls", "random_partners"),
        ("manifold", "cls", "random_partners"),
        ("kong", "cls", "random_partners"),
        ("aum_saliency", "cls", "random_partners"),
    ],
)
def test_steps_without_in_batch_partners_group_lengths_like_the_trainer(
    strategy: str, mix_at: str, grouping: str
) -> None:
    """Issue 21 (8): ``none`` (stage 1, the AUM passes) and ``tdmixup``/``random_pairs`` at [CLS]
    get HF Trainer's mega-batches (50 batches, at most a quarter of the set: 128 rows here, not the
    random-partner plan's 64), so less padding; in-batch partners keep the random-partner plan."""
    from tdmixup.core.config import TrainConfig
    from tdmixup.data.batch_stats import padding_fraction
    from tdmixup.strategies.step import batch_grouping
    from tdmixup.training.planning import plan_epoch

    assert batch_grouping(strategy, mix_at) == grouping  # type: ignore[arg-type]
    easy, amb = _regions()
    sets = (
        [easy] if strategy in ("none", "mixup", "manifold", "kong", "random_pairs") else [easy, amb]
    )
    per_set = 2 if strategy == "random_pairs" else 1
    plans = plan_epoch(
        sets,
        TrainConfig(seed=1),
        0,
        1,
        0,
        16,
        per_set=per_set,
        strategy=strategy,
        mix_at=mix_at,  # type: ignore[arg-type]
    )
    first = [b.positions for step in plans for b in step[:per_set]]
    mega = {"trainer": 4, "random_partners": 8}[grouping]
    expected = epoch_order(easy.lengths, batch_size=16, seed=1, epoch=0, min_megabatches=mega)
    first = first[: len(expected)]  # random_pairs: batches 2s and 2s + 1 of one pass per step
    assert [b.tolist() for b in first] == [b.tolist() for b in expected]
    random_partners = epoch_order(easy.lengths, batch_size=16, seed=1, epoch=0)
    if grouping == "trainer":
        assert padding_fraction(easy.lengths, first) < 0.8 * padding_fraction(
            easy.lengths, random_partners
        )


def test_rows_inside_a_batch_are_not_sorted_and_the_old_plan_is_kept_as_an_option() -> None:
    lengths = lengths_of(200)
    new = epoch_order(lengths, batch_size=16, seed=0, epoch=0)
    assert (
        sum(bool(np.all(np.diff(lengths[b]) <= 0)) for b in new) <= 2
    )  # longest-first only by chance
    old = epoch_order(
        lengths, batch_size=16, seed=0, epoch=0, min_megabatches=1, shuffle_rows=False
    )
    assert all(np.all(np.diff(lengths[b]) <= 0) for b in old)
    # the same rows per batch whatever the row order; mega-batches of at most 1/8 of the set
    assert sorted(len(b) for b in new) == sorted(len(b) for b in old)
    np.testing.assert_array_equal(np.sort(np.concatenate(new)), np.arange(200))


def test_tokenize_stores_compact_dtypes_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token ids are int32 and token types int8 (a third of int64's memory per set), tokenised in
    chunks without attention masks; a collated batch is unchanged (int64, as the model takes)."""
    import datasets

    from tdmixup.data import collate as collate_module

    require_snli()
    require_minilm()
    tokenizer = minilm_tokenizer()
    cols = snli_columns(40)
    calls: list[int] = []

    class Counting:
        pad_token_id = tokenizer.pad_token_id

        def __call__(self, *args: object, **kwargs: object) -> object:
            calls.append(len(args[0]))  # type: ignore[arg-type]
            assert kwargs.get("return_attention_mask") is False
            return tokenizer(*args, **kwargs)

    monkeypatch.setattr(collate_module, "TOKENIZE_CHUNK", 16)
    data = tokenize(datasets.Dataset.from_dict(cols), snli_task(), Counting(), max_length=32)
    assert calls == [16, 16, 8]
    assert {x.dtype for x in data.input_ids} == {np.dtype(np.int32)}
    assert data.token_type_ids is not None
    assert {x.dtype for x in data.token_type_ids} == {np.dtype(np.int8)}
    batch = collate(data, np.arange(40))
    ref = tokenizer(cols["text_a"], cols["text_b"], truncation=True, max_length=32, padding=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert batch[key].dtype == torch.int64
        np.testing.assert_array_equal(batch[key].numpy(), np.asarray(ref[key]), err_msg=key)
