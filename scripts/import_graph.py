"""The import graph of laconic, measured with grimp (import-linter's graph library), as JSON.

    python scripts/import_graph.py            # units, edges, cycles, levels, longest modules
    python scripts/import_graph.py --edges    # ... and every unit-level edge

A *unit* is a top-level piece of the tree: a sub-package of ``rl`` (``rl.algo``), a top-level module
of ``rl`` (``rl.config``), the whole ``rewards`` package, and ``scripts`` (read with ``ast``: it is not
a package). Edges are counted between units; cycles are the strongly connected components of more
than one unit (and, separately, of modules); levels are the length of the longest chain of edges.
The layers themselves are enforced by ``lint-imports`` (``[tool.importlinter]`` in pyproject.toml).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINE_LIMIT = 400


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "rl":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "rl"


def script_imports(known: set[str]) -> dict[str, set[str]]:
    """``scripts/<name>`` -> the project modules it imports (the longest known prefix of each import)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / "scripts").glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:  # `from rl import cli` imports rl.cli; `from rl.x import f` imports rl.x
                    name = f"{node.module}.{a.name}"
                    found.add(name if name in known else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        found &= known
        out[f"scripts.{path.stem}"] = found
    return out


def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in nodes:
        if v not in index:
            visit(v)
    return found


def levels(nodes: list[str], edges: dict[str, set[str]]) -> int | None:
    """Nodes on the longest import chain (None when the graph has a cycle: no order exists)."""
    memo: dict[str, int] = {}

    def depth(v: str, seen: frozenset[str]) -> int:
        if v in seen:
            raise ValueError("cycle")
        if v not in memo:
            memo[v] = 1 + max((depth(w, seen | {v}) for w in edges.get(v, ())), default=0)
        return memo[v]

    try:
        return max(depth(v, frozenset()) for v in nodes)
    except ValueError:
        return None


def measure() -> dict:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("rl", "rewards", include_external_packages=False, cache_dir=None)
    modules = sorted(graph.modules)
    mod_edges: dict[str, set[str]] = {m: set(graph.find_modules_directly_imported_by(m)) for m in modules}
    mod_edges.update(script_imports(set(modules)))
    units = sorted({unit_of(m) for m in mod_edges} - {"rl"})  # rl/__init__.py holds only a docstring
    unit_edges: dict[str, set[str]] = {u: set() for u in units}
    for m, targets in mod_edges.items():
        for t in targets:
            if unit_of(m) != unit_of(t) and "rl" not in (unit_of(m), unit_of(t)):
                unit_edges[unit_of(m)].add(unit_of(t))
    lines = {}
    for m in modules:
        path = ROOT / Path(*m.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        lines[m] = len(path.read_text().splitlines())
    longest = max(lines, key=lines.get)
    return {
        "units": len(units),
        "unit_edges": sum(len(v) for v in unit_edges.values()),
        "unit_cycles": sccs(units, unit_edges),
        "module_cycles": sccs(sorted(mod_edges), mod_edges),
        "levels": levels(units, unit_edges),
        "modules": len(modules),
        "module_edges": sum(len(v) for v in mod_edges.values()),
        "longest_module": {"module": longest, "lines": lines[longest]},
        f"modules_over_{LINE_LIMIT}_lines": {m: n for m, n in sorted(lines.items()) if n > LINE_LIMIT},
        "_unit_edges": {u: sorted(v) for u, v in unit_edges.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", action="store_true", help="also list every unit-level edge")
    args = ap.parse_args()
    report = measure()
    edges = report.pop("_unit_edges")
    if args.edges:
        report["edges"] = edges
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
