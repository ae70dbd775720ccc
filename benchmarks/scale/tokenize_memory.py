"""Memory of a tokenised SNLI training set: the int64 arrays of commit 5531427 against the int32 /
int8 chunked tokenisation now, on the same pairs (MiniLM tokenizer).

Each variant runs in its own subprocess: wall time, tracemalloc's peak during ``tokenize`` and
what the returned set still holds (Python objects and numpy buffers; not the Rust tokenizer's own
memory), and the process's peak RSS growth during ``tokenize`` (``ru_maxrss`` after minus
before: everything, the tokenizer's encodings included). Writes ``results/tokenize_memory.json``.

Run: ``python benchmarks/scale/tokenize_memory.py --n 100000``
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OLD_COMMIT = "5531427"


def old_tokenize() -> Any:
    """``tokenize`` as it was at :data:`OLD_COMMIT` (its module source, run in a fresh module)."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:src/tdmixup/data/collate.py"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("collate_5531427")
    sys.modules[module.__name__] = module
    exec(compile(source, "collate_5531427.py", "exec"), module.__dict__)
    return module.tokenize


def measure(fn: Any, cols: dict[str, list[Any]], tokenizer: Any) -> dict[str, float]:
    import resource

    from tdmixup.data.tasks import TASKS

    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    data = fn(cols, TASKS["snli"], tokenizer, max_length=128)
    seconds = time.perf_counter() - start
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "seconds": round(seconds, 2),
        "peak_mib": round(peak / 2**20, 1),
        "held_mib": round(held / 2**20, 1),
        "token_id_dtype": str(data.input_ids[0].dtype),
        "rows": len(data),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tokenize_memory.json")
    parser.add_argument("--child", choices=["old_int64", "new_int32_chunked"])
    args = parser.parse_args()
    if not args.child:
        runs = {}
        for variant in ("old_int64", "new_int32_chunked"):
            cmd = [sys.executable, __file__, "--n", str(args.n), "--child", variant]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[variant] = json.loads(out.strip().splitlines()[-1])
        sys.path.insert(0, str(HERE.parents[1] / "benchmarks" / "gpu"))
        from _common import machine

        result = {"pairs": args.n, **runs, "machine": machine()}
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    sys.path.insert(0, str(HERE.parents[1] / "benchmarks" / "gpu"))
    from _common import load_pairs

    from tdmixup.core.config import DEFAULT_MODEL
    from tdmixup.data.collate import tokenize
    from tdmixup.model.classifier import load_tokenizer

    tokenizer = load_tokenizer(DEFAULT_MODEL)
    cols = load_pairs(args.n)
    fn = old_tokenize() if args.child == "old_int64" else tokenize
    print(json.dumps(measure(fn, cols, tokenizer)))


if __name__ == "__main__":
    main()
