"""A house rule held by a test: no function in the daemon runs over a screen (60 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

import daemon

MAX_LINES = 60


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function, nested or not, longer than ``limit`` lines."""
    return [(n.name, n.lineno, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_in_the_daemon_is_over_60_lines():
    root = Path(daemon.__file__).parent
    found = [f"{path.relative_to(root.parent)}:{line} {name} ({length} lines)"
             for path in sorted(root.rglob("*.py")) for name, line, length in long_functions(path.read_text())]
    assert found == [], "break these up: " + "; ".join(found)


def test_a_long_method_is_found_and_a_screen_is_allowed():
    def function(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))

    source = function("fits", MAX_LINES) + "class C:\n" + function("too_long", MAX_LINES + 1, "    ")
    assert long_functions(source) == [("too_long", MAX_LINES + 2, MAX_LINES + 1)]
