"""MkDocs hooks: generate the API reference (one page per module of ``src/tdmixup``, so a new
module is documented without editing the site) and publish the plots kept under ``benchmarks/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tdmixup"
ASSETS = {"assets/scaling.png": ROOT / "benchmarks/scaling/results/scaling.png"}


def modules() -> list[str]:
    """Dotted names of the package's public modules, in path order (``_private`` ones left out)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if any(p.startswith("_") for p in parts[1:]) and parts[-1] != "__init__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def on_files(files: Files, config: Any) -> Files:
    names = modules()
    index = ["# API reference", "", "Generated from the docstrings, one page per module.", ""]
    for name in names:
        index.append(f"- [`{name}`]({name}.md)")
        files.append(File.generated(config, f"api/{name}.md", content=f"# `{name}`\n\n::: {name}\n"))
    files.append(File.generated(config, "api/index.md", content="\n".join(index) + "\n"))
    for uri, source in ASSETS.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
