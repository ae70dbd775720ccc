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
    # What each layer is for, lowest first. A module imports only modules of its own or a lower
    # layer (function-level imports included); within a layer the cycle test keeps imports one-way.
    (
        "foundations: configs, files, data, array checks, metrics",
        frozenset(
            {
                "config",
                "cli_options",
                "layout",
                "runio",
                "arrays",
                "classmix",
                "noise",
                "samples",
                "fingerprint",
                "calibration",
                "data",
                "data._common",
                "data.batch_stats",
                "data.collate",
                "data.dd_format",
                "data.hub",
                "data.inmemory",
                "data.readers",
                "data.schema",
                "data.sources",
                "data.tasks",
            }
        ),
    ),
    ("the classifier and its predictions", frozenset({"model", "predict", "backtranslation"})),
    (
        "training dynamics, data maps, AUM on arrays",
        frozenset(
            {
                "sample_statistics",
                "dynamics",
                "datamap",
                "datamap_plots",
                "aum",
                "aum_arrays",
                "suspects",
            }
        ),
    ),
    ("one training step per strategy", frozenset({"mixing", "kong", "aum_saliency", "mixup"})),
    (
        "the training loop",
        frozenset(
            {
                "planning",
                "optim",
                "epoch_totals",
                "checkpoint",
                "tracking",
                "training",
                "hf_trainer",
            }
        ),
    ),
    ("evaluation and reports", frozenset({"evaluation", "report", "tables"})),
    (
        "using the trained classifier: predict, export, model card, Hub",
        frozenset(
            {
                "inference",
                "inference.classifier",
                "inference.commands",
                "inference.export",
                "inference.files",
                "inference.hf_modeling",
                "inference.hub",
                "inference.model_card",
                "inference.prediction",
            }
        ),
    ),
    ("a run folder's session and its training stages", frozenset({"session", "aum_training"})),
    ("the pipeline of stages", frozenset({"pipeline"})),
    ("one call on data in memory: fit, find_label_issues", frozenset({"fitting", "label_issues"})),
    ("commands", frozenset({"experiments", "preflight", "cli_config", "cli"})),
)


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
    assert "mixup" in graph["training"]  # function-level
    assert "data.schema" in graph["aum"]
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


def layer_of() -> dict[str, int]:
    return {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}


def back_reaches(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Imports from a module to a module of a higher layer, as ``"a -> b"``."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if a in layers and b in layers and layers[b] > layers[a]
    )


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(set(import_graph()) - set(layer_of()) - {"tdmixup"})
    assert not unplaced, (
        f"modules missing from LAYERS in this test: {unplaced}; place each in its layer"
    )


def test_no_module_imports_a_later_layer() -> None:
    found = back_reaches(import_graph(), layer_of())
    names = [name for name, _ in LAYERS]
    assert not found, (
        f"imports that reach up to a later layer: {found}. Layers, lowest first: {names}. Move "
        "the shared code down, or hand the later stage's function in as a callable"
    )


def test_the_back_reach_check_sees_an_upward_import() -> None:
    graph = {"dynamics": {"aum", "config"}, "aum": {"dynamics"}}
    assert back_reaches(graph, layer_of()) == []  # aum (same layer) and config (lower) are fine
    assert back_reaches({"evaluation": {"session"}}, layer_of()) == ["evaluation -> session"]


def test_the_readme_table_names_every_module_in_its_layer() -> None:
    """The layer table of docs/guides/architecture.md lists every module under its LAYERS layer."""
    page = PACKAGE.parents[1] / "docs" / "guides" / "architecture.md"
    section = page.read_text(encoding="utf-8").split("# How it fits together", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
    layer_names = [cells[1].strip() for cells in rows[1:]]  # the header row first
    modules_by_row = [cells[2] for cells in rows[1:]]
    current = ""
    placed: dict[str, int] = {}
    readme_layers: list[str] = []
    for name, modules in zip(layer_names, modules_by_row, strict=True):
        if name:
            current = name
            readme_layers.append(name)
        for module in modules.replace("`", "").split(","):
            module = module.strip().removesuffix(".py").rstrip("/")
            if module:
                placed[module] = readme_layers.index(current)
    assert len(readme_layers) == len(LAYERS), (readme_layers, [n for n, _ in LAYERS])
    for index, (_, modules) in enumerate(LAYERS):
        for module in modules:
            top = module.split(".")[0]
            assert placed.get(top) == index, f"{page.name}: {module} not in layer {index}"
