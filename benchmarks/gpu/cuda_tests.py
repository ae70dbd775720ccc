"""Part (a): the ``cuda``-marked tests on the GPU, then ``tests/test_gpu_precision.py``; writes
``results/cuda_tests.json`` (per test: outcome and seconds) from pytest's JUnit XML.

Run: ``python benchmarks/gpu/cuda_tests.py`` (``--dry-run``: the same on this machine, where
the ``cuda`` tests skip; nothing written under results/).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "cuda_tests.json")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_cuda.py",
            "tests/test_gpu_precision.py",
            f"--junitxml={xml}",
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
        tests = []
        if xml.exists():
            for case in ET.parse(xml).getroot().iter("testcase"):
                outcome = "passed"
                for tag in ("failure", "error", "skipped"):
                    node = case.find(tag)
                    if node is not None:
                        outcome = tag
                        message = (node.get("message") or "")[:300]
                        break
                tests.append(
                    {
                        "test": f"{case.get('classname')}::{case.get('name')}",
                        "outcome": outcome,
                        "seconds": float(case.get("time") or 0),
                        **({"message": message} if outcome != "passed" else {}),
                    }
                )
    result = {
        "part": "a: cuda-marked tests",
        "command": " ".join(cmd[1:-1]),
        "returncode": proc.returncode,
        "counts": {
            k: sum(t["outcome"] == k for t in tests)
            for k in ("passed", "failure", "error", "skipped")
        },
        "tests": tests,
        "wall_s": round(time.perf_counter() - start, 1),
        "machine": machine(),
    }
    print(result["counts"], flush=True)
    if not args.dry_run:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
