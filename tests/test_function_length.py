"""No function body in ``src/tdmixup`` is longer than 60 lines (issue 22, item 6).

A body is measured from its first statement after the docstring to the end line of its last
statement, so a long docstring does not count and a comment or blank line inside does. Nested
functions and methods are measured on their own as well as inside the function around them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tdmixup"
MAX_BODY_LINES = 60


def body_lines(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the last statement's end line."""
    body = func.body
    first = body[0]
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    end = body[-1].end_lineno
    assert end is not None
    return end - body[0].lineno + 1


def long_functions(source: str, path: str, limit: int = MAX_BODY_LINES) -> list[str]:
    """``path:function lines`` for every function in ``source`` whose body exceeds ``limit``."""
    tree = ast.parse(source, filename=path)
    return [
        f"{path}:{node.name} {body_lines(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and body_lines(node) > limit
    ]


def test_body_lines_skips_the_docstring_and_counts_to_the_last_statement() -> None:
    source = (
        'def f(x):\n    """Doc.\n\n    More.\n    """\n'
        "    y = x\n\n    # note\n    return (\n        y\n    )\n"
    )
    func = ast.parse(source).body[0]
    assert isinstance(func, ast.FunctionDef)
    assert body_lines(func) == 6
    only_doc = ast.parse('def g():\n    """Only a docstring."""\n').body[0]
    assert isinstance(only_doc, ast.FunctionDef)
    assert body_lines(only_doc) == 1


def test_the_check_names_a_function_over_the_limit() -> None:
    long_body = "\n".join(f"    x{i} = {i}" for i in range(61))
    source = f"class C:\n    def short(self):\n        return 1\n\n\ndef long():\n{long_body}\n"
    assert long_functions(source, "m.py") == ["m.py:long 61"]
    assert long_functions(source, "m.py", limit=61) == []


def test_no_function_body_in_the_package_exceeds_60_lines() -> None:
    paths = sorted(PACKAGE.rglob("*.py"))
    assert paths, f"no modules found under {PACKAGE}"
    too_long = [
        line
        for path in paths
        for line in long_functions(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), MAX_BODY_LINES
        )
    ]
    assert too_long == [], (
        f"function bodies over {MAX_BODY_LINES} lines (split them into named parts):\n"
        + "\n".join(too_long)
    )
