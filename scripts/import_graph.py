"""Import graph figures for the architecture: modules per package, import cycles, cross-layer imports.

    python scripts/import_graph.py

Counts come from grimp (import-linter's graph builder) over the app's three top-level packages.
A cycle is a strongly connected set of two or more modules; a cross-layer import is one that goes
against ``ui -> collector <- devices`` or, inside ``collector``, against
``recording/review/export/wam -> storage -> wire`` (storage and wire import nothing above them).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import grimp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "collector" and len(parts) > 2 else parts[0]


def strongly_connected(graph, modules: set[str]) -> list[set[str]]:
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return out


#: Before the split (flat ``collector/``), the modules that became each layer.
FLAT = {"wire": {"protocol", "streams", "bus", "security", "clocksync"},
        "storage": {"episode", "episode_reader", "recovery", "writer_lock", "checksums", "codecs",
                    "sync", "ledger", "library"}}
RANK = {"wire": 0, "storage": 1}


def layer_of(module: str) -> str:
    """``ui``, ``devices``, ``wire``, ``storage`` or ``app`` (the rest of collector)."""
    parts = module.split(".")
    if parts[0] != "collector":
        return parts[0]
    if len(parts) == 1:
        return "root"  # collector/__init__.py: the version only
    if len(parts) > 1 and parts[1] in RANK:
        return parts[1]
    for layer, names in FLAT.items():
        if len(parts) == 2 and parts[1] in names:
            return layer
    return "app"


def layer_violation(importer: str, imported: str) -> bool:
    a, b = layer_of(importer), layer_of(imported)
    if b == "root":
        return False
    if a in ("wire", "storage", "app") and b in ("ui", "devices"):
        return True  # the core imports no UI and no driver
    if a == "ui" and b == "devices" or a == "devices" and b == "ui":
        return True
    if a == "devices":
        return b not in ("devices", "wire", "root")  # drivers import only the wire package
    if a in RANK:
        return b not in RANK or RANK[b] > RANK[a]  # wire imports nothing above it; storage only wire
    return False


def main() -> None:
    graph = grimp.build_graph("collector", "devices", "ui", cache_dir=None)
    modules = {m for m in graph.modules if m.split(".")[0] in ("collector", "devices", "ui")}
    per_package = Counter(package_of(m) for m in modules)
    print("modules per package:")
    for package, count in sorted(per_package.items()):
        print(f"  {package:<22}{count:>4}")
    print(f"  {'total':<22}{len(modules):>4}")
    cycles = strongly_connected(graph, modules)
    print(f"import cycles: {len(cycles)}")
    for component in cycles:
        print("  " + " <-> ".join(sorted(component)))
    crossing = sorted((a, b) for a in modules for b in graph.find_modules_directly_imported_by(a)
                      if b in modules and layer_violation(a, b))
    print(f"cross-layer imports: {len(crossing)}")
    for a, b in crossing:
        print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
