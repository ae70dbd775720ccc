"""Import cycles among tdmixup's modules, read from the source with ``ast``.

Every ``import``/``from … import`` of a tdmixup module counts, wherever it stands: at the top,
inside a function (the usual way a cycle is hidden) or under ``if TYPE_CHECKING``. A cycle is
a closed path of such imports (``a -> b -> a``); each is written from its alphabetically first
module, so the same cycle always reads the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tdmixup"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # The package's folders are its stages, lowest floor first (docs/guides/architecture.md). A
    # module imports only modules of its own folder or of a lower floor (function-level imports
    # included); two folders on one floor do not import each other; within a folder the cycle
    # test keeps imports one-way.
    ("core: configs, run-folder names, atomic files, array checks", frozenset({"core"})),
    ("data: tasks, readers, tokenisation", frozenset({"data"})),
    ("dynamics and the classifier", frozenset({"dynamics", "model"})),
    ("strategies and evaluation", frozenset({"strategies", "evaluation"})),
    ("training", frozenset({"training"})),
    ("inference", frozenset({"inference"})),
    ("run: stages, pipeline, experiments, one-call APIs", frozenset({"run"})),
    ("cli", frozenset({"cli"})),
)
ROOT_MODULES = frozenset({"tdmixup", "_compat"})
"""The package's own ``__init__`` (the public API) and the finder for pre-0.3 import paths."""


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the tdmixup modules it imports (short names, without ``tdmixup.``)."""
    files = {_module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)  # from pkg import module
        graph[name] = {t for t in targets if t in files and t not in (name, "tdmixup")}
    short = {k: {t.removeprefix("tdmixup.") for t in v} for k, v in graph.items()}
    return {k.removeprefix("tdmixup."): v for k, v in short.items()}


def simple_cycles(graph: dict[str, set[str]]) -> set[str]:
    """Every elementary cycle, as ``"a -> b -> c"`` starting from its smallest module name."""
    found = set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    found.add(" -> ".join(path))
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_cycle_finder_sees_function_level_and_package_imports(tmp_path: Path) -> None:
    graph = import_graph()
    assert "strategies.step" in graph["training.loop"]  # function-level
    assert "data.schema" in graph["dynamics.aum"]
    package = tmp_path / "tdmixup"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "schema.py").write_text("from .. import plots\n")  # relative, two levels
    (package / "plots.py").write_text("def f():\n    from tdmixup import stats\n")  # package form
    (package / "stats.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    import tdmixup.data.schema\n"
    )
    small = import_graph(package)
    assert small == {
        "tdmixup": set(),
        "data": set(),
        "data.schema": {"plots"},
        "plots": {"stats"},
        "stats": {"data.schema"},
    }
    assert simple_cycles(small) == {"data.schema -> plots -> stats"}
    assert simple_cycles({"a": {"b"}, "b": {"c", "a"}, "c": {"a"}}) == {"a -> b", "a -> b -> c"}


def test_no_import_cycle() -> None:
    cycles = simple_cycles(import_graph())
    assert not cycles, (
        f"import cycle(s) among tdmixup modules: {sorted(cycles)}. Data flows one way (see "
        "LAYERS): move the shared helper down a layer or pass a callable instead"
    )


def folder_of(module: str) -> str:
    """The stage folder of a module's short name: ``"dynamics.aum"`` → ``"dynamics"``."""
    return module.split(".")[0]


def layer_of() -> dict[str, int]:
    """Stage folder → its floor (0 = lowest)."""
    return {folder: i for i, (_, folders) in enumerate(LAYERS) for folder in folders}


def back_reaches(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Imports that reach up a floor, or across to the other folder of the same floor."""
    found = []
    for a, targets in graph.items():
        for b in targets:
            fa, fb = folder_of(a), folder_of(b)
            if fa in layers and fb in layers and fa != fb and layers[fb] >= layers[fa]:
                found.append(f"{a} -> {b}")
    return sorted(found)


def test_every_module_sits_in_a_stage_folder() -> None:
    unplaced = sorted(
        m for m in import_graph() if m not in ROOT_MODULES and folder_of(m) not in layer_of()
    )
    assert not unplaced, (
        f"modules outside the stage folders of LAYERS: {unplaced}; put each in its stage's folder"
    )
    for folder in layer_of():
        assert (PACKAGE / folder / "__init__.py").is_file(), f"{folder}/ is not a package"


def test_no_module_imports_a_later_layer() -> None:
    found = back_reaches(import_graph(), layer_of())
    names = [name for name, _ in LAYERS]
    assert not found, (
        f"imports that reach up a floor or across one: {found}. Floors, lowest first: {names}. "
        "Move the shared code down, or hand the later stage's function in as a callable"
    )


def test_the_back_reach_check_sees_an_upward_and_a_sideways_import() -> None:
    graph = {"dynamics.table": {"dynamics.aum", "core.config", "data.schema"}}
    assert back_reaches(graph, layer_of()) == []  # own folder and lower floors are fine
    assert back_reaches({"evaluation.sets": {"run.session"}}, layer_of()) == [
        "evaluation.sets -> run.session"
    ]
    assert back_reaches({"model.predict": {"dynamics.table"}}, layer_of()) == [
        "model.predict -> dynamics.table"
    ]


def test_the_architecture_table_names_every_folder_and_module() -> None:
    """docs/guides/architecture.md's table: each folder on its LAYERS floor, each module named."""
    page = PACKAGE.parents[1] / "docs" / "guides" / "architecture.md"
    section = page.read_text(encoding="utf-8").split("# How it fits together", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")][1:]
    floors: list[str] = []
    floor_of: dict[str, int] = {}
    text_of: dict[str, str] = {}
    for cells in rows:  # | floor | folder | modules and what they hold |
        if cells[1].strip():
            floors.append(cells[1].strip())
        folder = cells[2].replace("`", "").strip().rstrip("/")
        floor_of[folder] = len(floors) - 1
        text_of[folder] = cells[3]
    assert len(floors) == len(LAYERS), (floors, [n for n, _ in LAYERS])
    for index, (_, folders) in enumerate(LAYERS):
        for folder in folders:
            assert floor_of.get(folder) == index, f"{page.name}: {folder}/ not on floor {index}"
            for path in sorted((PACKAGE / folder).glob("*.py")):
                if path.name != "__init__.py":
                    assert f"`{path.name}`" in text_of[folder], (
                        f"{page.name}: {folder}/{path.name} is not named in its folder's row"
                    )
