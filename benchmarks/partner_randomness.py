"""How random MixUp partners are under length grouping, and what the grouping saves in padding.

On the lengths of real SNLI training pairs (the CPU reproduction's first 1,500 labelled pairs,
read by tdmixup's SNLI task loader and tokenised by its ``tokenize`` with the offline MiniLM
tokenizer, max length 256), batch 16, for three batch plans of
:func:`tdmixup.data.collate.epoch_order`:

* ``ungrouped`` — the seeded permutation cut into batches (``--no-group-by-length``);
* ``old`` — the plan before issue 9: mega-batches of 800 rows sorted by length (a 495-row
  region is one sorted block), batch order shuffled, rows longest first
  (``min_megabatches=1, shuffle_rows=False``);
* ``new`` — the random-partner plan (``Grouping "random_partners"``): mega-batches of at most
  1/8 of the set, rows in random order; the plan of ``mixup``, ``manifold``, ``kong`` and
  ``aum_saliency`` (before issue 21: of every strategy);
* ``trainer`` — HF ``Trainer``'s mega-batches (50 batches, at most 1/4 of the set), rows in random
  order: since issue 21 the plan of ``none`` and of ``tdmixup``/``random_pairs`` at [CLS], whose
  partners are row i of another batch (so their rank correlation must stay near 0).

Sizes: 495 (a region of the CPU reproduction: the easy and ambiguous sets are stand-ins drawn at
random from the 1,500, disjoint) and 1,500 (the whole training set; its "second set" is the same
rows planned with another seed, as the loop plans each set with its own seed). For each, averaged
over ``--seeds`` seeds and ``--epochs`` consecutive epochs (:mod:`tdmixup.data.batch_stats`):

* ``reoccurrence`` — of the pairs sharing a batch in epoch e, the share sharing one in e + 1
  (``random_expectation`` = (B − 1)/(N − 1), what random batches give);
* ``padding_fraction`` — padding / all token slots (``slots_per_token`` = 1 / (1 − it), the
  compute cost relative to no padding);
* ``tdmixup_rank_correlation`` — TDMixUp's pairing, row i of set A's batch × row i of set B's:
  Pearson r of the two rows' length ranks inside their batches (1 = matched by length rank);
* ``tdmixup_length_correlation`` — the same pairs' lengths (r);
* ``random_pairs_length_correlation`` — random pairs of one set as the loop plans them: old,
  a random permutation inside one batch; new, row i of batch 2s × row i of batch 2s + 1;
* ``in_batch_partner_length_correlation`` — ``mixup``/``manifold`` partners (a random
  permutation inside one batch), in every plan.

No training: a few seconds. Run:
``PYTHONPATH=src .venv/bin/python benchmarks/partner_randomness.py``
(writes ``benchmarks/results/partner_randomness.json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from tdmixup.core.runio import environment_info, write_json
from tdmixup.data.batch_stats import padding_fraction, paired_length_correlation, reoccurrence
from tdmixup.data.collate import epoch_order

RESULTS = Path(__file__).resolve().parent / "results" / "partner_randomness.json"
PLANS: dict[str, dict[str, Any]] = {
    "ungrouped": {"group_by_length": False},
    "old": {"min_megabatches": 1, "shuffle_rows": False},
    "new": {},
    "trainer": {"min_megabatches": 4},
}


def snli_lengths(n: int, max_length: int) -> np.ndarray:
    """Token counts of the first ``n`` labelled SNLI training pairs (tdmixup's reader and
    tokenizer)."""
    from tdmixup.core.config import DEFAULT_MODEL, DataConfig
    from tdmixup.data.collate import tokenize
    from tdmixup.data.tasks import load_task
    from tdmixup.model.classifier import load_tokenizer

    task = load_task(DataConfig(task="snli", train_size=n, max_seq_length=max_length), seed=0)
    data = tokenize(task.train, task.spec, load_tokenizer(DEFAULT_MODEL), max_length=max_length)
    return np.asarray(data.lengths)


def plan(
    lengths: np.ndarray, variant: str, *, batch_size: int, seed: int, epoch: int
) -> list[np.ndarray]:
    return epoch_order(lengths, batch_size=batch_size, seed=seed, epoch=epoch, **PLANS[variant])


def in_batch_partners(batches: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Each batch's rows in a random permutation: the partners ``mixup``/``manifold`` (and the
    old ``random_pairs``) draw inside one batch."""
    return [b[rng.permutation(len(b))] for b in batches]


def measure(
    a: np.ndarray, b: np.ndarray, variant: str, *, batch_size: int, seeds: int, epochs: int
) -> dict[str, Any]:
    """All measures for sets with lengths ``a`` (re-occurrence, padding) and ``b`` (TDMixUp's
    partner set)."""
    again, padding, rank_r, length_r, rp_r, in_batch_r = [], [], [], [], [], []
    for seed in range(1, seeds + 1):
        plans_a = [
            plan(a, variant, batch_size=batch_size, seed=seed, epoch=e) for e in range(epochs)
        ]
        plans_b = [
            plan(b, variant, batch_size=batch_size, seed=seed + 7919, epoch=e)
            for e in range(epochs)
        ]
        rng = np.random.default_rng(seed)
        for e in range(epochs):
            if e + 1 < epochs:
                again.append(reoccurrence(plans_a[e], plans_a[e + 1], len(a)))
            padding.append(padding_fraction(a, plans_a[e]))
            rank_r.append(paired_length_correlation(a, plans_a[e], b, plans_b[e]))
            length_r.append(
                paired_length_correlation(a, plans_a[e], b, plans_b[e], within_batch=False)
            )
            partners = in_batch_partners(plans_a[e], rng)
            in_batch_r.append(
                paired_length_correlation(a, plans_a[e], a, partners, within_batch=False)
            )
            if variant in ("new", "trainer"):  # the loop pairs batch 2s with 2s + 1 of one pass
                rp_r.append(
                    paired_length_correlation(
                        a, plans_a[e][0::2], a, plans_a[e][1::2], within_batch=False
                    )
                )
            else:
                rp_r.append(in_batch_r[-1])
    pad = float(np.mean(padding))
    n = len(a)
    return {
        "reoccurrence": float(np.mean(again)),
        "reoccurrence_range": [float(min(again)), float(max(again))],
        "random_expectation": (batch_size - 1) / (n - 1),
        "padding_fraction": pad,
        "slots_per_token": 1 / (1 - pad),
        "tdmixup_rank_correlation": float(np.mean(rank_r)),
        "tdmixup_length_correlation": float(np.mean(length_r)),
        "random_pairs_length_correlation": float(np.mean(rp_r)),
        "in_batch_partner_length_correlation": float(np.mean(in_batch_r)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1500, help="SNLI training pairs to tokenise.")
    p.add_argument("--region", type=int, default=495, help="Size of the region-sized sets.")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    start = time.perf_counter()
    lengths = snli_lengths(args.n, args.max_length)
    order = np.random.default_rng(0).permutation(len(lengths))
    sets = {
        str(args.region): (
            lengths[order[: args.region]],
            lengths[order[args.region : 2 * args.region]],
        ),
        str(args.n): (lengths, lengths),
    }
    sizes = {
        size: {
            variant: measure(
                a, b, variant, batch_size=args.batch_size, seeds=args.seeds, epochs=args.epochs
            )
            for variant in PLANS
        }
        for size, (a, b) in sets.items()
    }
    result = {
        "benchmark": "partner_randomness",
        "setting": {
            "pairs": args.n,
            "region": args.region,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "tokenizer": "offline all-MiniLM-L6-v2",
            "lengths": {
                "mean": float(lengths.mean()),
                "min": int(lengths.min()),
                "max": int(lengths.max()),
            },
            "plans": {k: v or "defaults" for k, v in PLANS.items()},
        },
        "sizes": sizes,
        "seconds": time.perf_counter() - start,
        "machine": environment_info(world_size=1),
    }
    write_json(args.out, result)
    for size, variants in sizes.items():
        print(f"N = {size}")
        for variant, m in variants.items():
            print(
                f"  {variant:9s} re-occurrence {m['reoccurrence']:.3f} "
                f"(random {m['random_expectation']:.3f})  "
                f"padding {m['padding_fraction']:.3f}  "
                f"TDMixUp rank r {m['tdmixup_rank_correlation']:+.3f}  "
                f"length r {m['tdmixup_length_correlation']:+.3f}  random-pairs length r "
                f"{m['random_pairs_length_correlation']:+.3f}  "
                f"in-batch r {m['in_batch_partner_length_correlation']:+.3f}"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
