"""The README and the docs site: the site builds offline with warnings as errors, every
``tdmixup`` command in them parses with the real command line, every Python block compiles and
imports only names tdmixup exports, and every relative link points at a file.

The commands that chain (the stage commands, the own-data examples, ...) are also *run* by
``test_readme_stages.py``, ``test_own_data.py`` and the tests named beside each guide's examples;
this file checks all of them at once, so a renamed option or a removed function fails here.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tdmixup
from tdmixup.cli.commands import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[tuple[Path, str]]:
    """``(page, code)`` for every fenced block of ``language`` in the README and docs."""
    return [
        (page, code)
        for page in PAGES
        for lang, code in FENCE.findall(page.read_text(encoding="utf-8"))
        if lang == language
    ]


def tdmixup_commands() -> list[tuple[Path, list[str]]]:
    """Every ``tdmixup …`` (or ``… -m tdmixup.cli …``) command in a bash block, as its argv
    after the program name; continuation lines joined, ``# comments`` and ``…`` placeholders
    dropped."""
    found = []
    for page, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].replace("…", " ").strip()
            if line.startswith("tdmixup "):
                found.append((page, shlex.split(line)[1:]))
            elif "-m tdmixup.cli " in line:
                found.append((page, shlex.split(line.split("-m tdmixup.cli ", 1)[1])))
    return found


def test_the_docs_have_commands_and_code_to_check() -> None:
    commands = {argv[0] for _, argv in tdmixup_commands()}
    assert {"run", "train", "dynamics", "datamap", "aum", "evaluate", "experiment"} <= commands
    assert len(blocks("python")) >= 3


@pytest.mark.parametrize(
    "page, argv",
    tdmixup_commands(),
    ids=lambda x: x.name if isinstance(x, Path) else " ".join(x)[:60],
)
def test_every_documented_command_parses(page: Path, argv: list[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on an unknown option or a bad value
        pytest.fail(
            f"{page.relative_to(REPO)}: `tdmixup {shlex.join(argv)}` does not parse ({exit_})"
        )


def test_every_python_block_compiles_and_imports_what_tdmixup_exports() -> None:
    problems = []
    for page, code in blocks("python"):
        where = page.relative_to(REPO)
        try:
            tree = ast.parse(code)
        except SyntaxError as error:
            problems.append(f"{where}: {error}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tdmixup":
                problems += [
                    f"{where}: tdmixup has no {alias.name!r}"
                    for alias in node.names
                    if not hasattr(tdmixup, alias.name)
                ]
    assert not problems, problems


def test_every_relative_link_points_at_a_file() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    missing = []
    for page in PAGES:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            base = page.parent
            resolved = (base / target).resolve()
            generated = page.is_relative_to(REPO / "docs") and (
                target.startswith(("api/", "assets/")) or "/api/" in target
            )
            if not resolved.exists() and not generated:
                missing.append(f"{page.relative_to(REPO)} → {target}")
    assert not missing, missing


@pytest.mark.slow
def test_the_site_builds_offline_with_warnings_as_errors(tmp_path: Path) -> None:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is missing: pip install -e '.[dev]' (or '.[docs]') installs it")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = tmp_path / "site" / "api"
    assert (api / "tdmixup.dynamics.table" / "index.html").exists()
    assert "compute_statistics" in (api / "tdmixup.dynamics.table" / "index.html").read_text()
    assert (tmp_path / "site" / "assets" / "scaling.png").stat().st_size > 10_000
