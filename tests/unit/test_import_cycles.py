"""No import cycle reaches into the engines package, not even through a package's ``__init__``.

import-linter's ``acyclic_siblings`` contract (pyproject.toml) checks the siblings of each package;
a submodule that imports its own package back, whose ``__init__`` imports the submodule, is no
sibling cycle, so this walks the whole import graph (function-level imports included) instead.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGE = "daemon.engines"


def cycles_through(graph: grimp.ImportGraph, package: str) -> list[tuple[str, ...]]:
    """One shortest cycle per import of a module in ``package`` that its target imports back."""
    inside = {m for m in graph.modules if m == package or m.startswith(package + ".")}
    found = []
    for importer in sorted(inside):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                found.append((importer, *back))
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("daemon", cache_dir=None)


def test_the_engines_package_has_no_import_cycle(graph):
    assert cycles_through(graph, PACKAGE) == []


def test_a_package_imported_back_by_its_submodule_is_found():
    """The check itself: the cycle import-linter's sibling contract cannot see."""
    g = grimp.ImportGraph()
    for module in ("pkg", "pkg.sub", "pkg.leaf"):
        g.add_module(module)
    g.add_import(importer="pkg", imported="pkg.sub")  # inside a function in __init__, say
    g.add_import(importer="pkg.sub", imported="pkg")
    g.add_import(importer="pkg.sub", imported="pkg.leaf")
    assert cycles_through(g, "pkg") == [("pkg", "pkg.sub", "pkg"), ("pkg.sub", "pkg", "pkg.sub")]
