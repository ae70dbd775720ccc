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

KNOWN_CYCLES = {
    # Issue 12 removes these (a `stages` module owning Session/train_and_evaluate handed to the
    # AUM stages as a callable; a `predict` module for predict_logits; a public batching module
    # shared by mixup and kong). Until then the list may only shrink: a cycle not in it fails.
    "aum_training -> pipeline",  # AUM training calls pipeline.train_and_evaluate
    "aum_saliency -> pipeline",  # its stages use pipeline's done markers and train_and_evaluate
    "aum_saliency -> mixup",  # mixup dispatches to step_aum_saliency, which uses mixup helpers
    "aum_saliency -> pipeline -> training -> mixup",
    "aum_saliency -> pipeline -> evaluation -> training -> mixup",  # evaluation: predict_logits
    "kong -> mixup",  # kong uses mixup's private helpers; mixup dispatches to kong_loss
    "datamap -> datamap_plots",  # plots use datamap's helpers; save_datamap draws the plots
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the tdmixup modules it imports (short names, without ``tdmixup.``)."""
    files = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
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


def test_the_cycle_finder_sees_function_level_and_package_imports() -> None:
    graph = import_graph()
    assert "training" in graph["mixup"] or "mixup" in graph["training"]  # function-level
    assert "datamap_plots" in graph["datamap"]  # `from tdmixup import datamap_plots` in a function
    assert "data.schema" in graph["aum"]
    assert simple_cycles({"a": {"b"}, "b": {"c", "a"}, "c": {"a"}}) == {"a -> b", "a -> b -> c"}


def test_no_import_cycle_beyond_the_known_ones() -> None:
    new = simple_cycles(import_graph()) - KNOWN_CYCLES
    assert not new, (
        f"new import cycle(s) among tdmixup modules: {sorted(new)}. Data flows one way (data -> "
        "training -> dynamics -> datamap -> aum -> mixup training -> evaluation -> report, the "
        "pipeline on top): move the shared helper down a layer or pass a callable instead"
    )
