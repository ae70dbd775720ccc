"""Checks of issue 21 that need several processes; run under ``torchrun --nproc_per_node 2``.

Usage (see tests/test_multi_process.py)::

    torchrun --standalone --nproc_per_node 2 tests/scripts/multi_process_checks.py \
        --model-dir M --out OUT

Every process writes what it saw to ``OUT/result.rank<R>.json``:

* ``shared`` / ``not_shared`` — :func:`tdmixup.core.runio.check_shared_folder` on one folder, then
on
  a folder of each process's own (two machines with local disks mounted at one path): None, or
  the error line each process got;
* ``decided`` — :func:`tdmixup.core.runio.main_process_decides` when only process 1 sees a
  ``done.json`` (each process's own folder): both must take the main process's answer;
* ``mixup_refused`` — the error of ``manifold`` training with a global batch of 2 (one row per
  process);
* ``partners`` — for ``manifold`` on 9 SNLI pairs, batch 4, 2 epochs: per step of this process,
  ``(real rows, rows paired with themselves)``;
* ``backtranslated`` — texts this process translated (a fake translator) and the augmented set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _error(fn: Any) -> str | None:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the test reads the message
        return f"{type(err).__name__}: {err}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from _tiny import train_tiny
    from tdmixup.core.runio import check_shared_folder, main_process_decides
    from tdmixup.strategies import step as mixup
    from tdmixup.training.loop import make_accelerator

    torch.set_num_threads(1)
    acc = make_accelerator()
    rank = int(acc.process_index)
    result: dict[str, Any] = {"world": int(acc.num_processes)}

    result["shared"] = _error(lambda: check_shared_folder(acc, args.out / "shared"))
    own = args.out / f"local{rank}"
    own.mkdir(parents=True, exist_ok=True)
    result["not_shared"] = _error(lambda: check_shared_folder(acc, own, wait_s=1.0))

    if rank == 1:
        (own / "done.json").write_text("{}")
    result["decided"] = main_process_decides(acc, (own / "done.json").exists())

    result["mixup_refused"] = _error(
        lambda: train_tiny(
            args.model_dir, args.out / "refused", n=9, epochs=1, batch_size=2, strategy="manifold"
        )
    )

    partners: list[tuple[int, int]] = []
    original = mixup.partner_index

    def recording(weight: torch.Tensor, generator: Any = None, **kw: Any) -> torch.Tensor:
        index = original(weight, generator, **kw)
        real = (weight > 0).nonzero().flatten()
        partners.append((len(real), int((index[real] == real).sum())))
        return index

    mixup.partner_index = recording  # type: ignore[assignment]
    train_tiny(
        args.model_dir, args.out / "manifold", n=9, epochs=2, batch_size=4, strategy="manifold"
    )
    mixup.partner_index = original  # type: ignore[assignment]
    result["partners"] = partners

    result["backtranslated"] = _back_translate(acc, args.out / "bt_cache")
    (args.out / f"result.rank{rank}.json").write_text(json.dumps(result))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _back_translate(acc: Any, cache: Path) -> dict[str, Any]:
    """Augment 11 pairs with a fake translator, chunks of 3 texts, this process's share."""
    import datasets

    from tdmixup.strategies import backtranslation as bt

    translated: list[int] = []

    def fake(model: Any, texts: list[str], config: Any, seed: int, bar: Any) -> list[str]:
        translated.append(len(texts))
        return [f"{model[-2:]}{seed % 97}:{t}" for t in texts]

    bt.CHUNK_TEXTS = 3
    bt._load_translator = lambda name, device: name  # type: ignore[assignment]
    bt._translate = fake  # type: ignore[assignment]
    data = datasets.Dataset.from_dict(
        {
            "sample_id": list(range(11)),
            "text_a": [f"premise {i // 2}" for i in range(11)],
            "text_b": [f"hypothesis {i}" for i in range(11)],
            "label": [i % 3 for i in range(11)],
        }
    )
    out = bt.augment_with_back_translation(
        data,
        "pair",
        bt.BackTranslationConfig(forward_model="en-de", backward_model="de-en", device="cpu"),
        cache_dir=cache,
        process_index=int(acc.process_index),
        num_processes=int(acc.num_processes),
        progress=False,
        poll_s=0.05,
    )
    return {"texts": sum(translated), "rows": out.to_list()}


if __name__ == "__main__":
    main()
