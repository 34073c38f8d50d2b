"""tf_metaling's modules import each other without a cycle.

The graph is read from the source with `ast`: every ``import`` and
``from ... import`` of a tf_metaling module, at module level and inside
functions alike (a lazy import still closes a cycle when it runs), relative
imports resolved against the importing package. Importing ``a.b.c`` runs the
``__init__`` of ``a.b`` first, so an edge goes to every package on the way
that is not already being imported (an ancestor of the importer).
"""

from __future__ import annotations

import ast
import os

PACKAGE = "tf_metaling"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)


def module_files(root: str = ROOT, package: str = PACKAGE) -> dict[str, str]:
    """``{dotted module name: file}`` of every module of the package (``__init__`` as the package)."""
    modules = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        parts = [package, *os.path.relpath(directory, root).split(os.sep)]
        parts = [part for part in parts if part != "."]
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            stem = name[: -len(".py")]
            dotted = ".".join(parts if stem == "__init__" else [*parts, stem])
            modules[dotted] = os.path.join(directory, name)
    return modules


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names of everything `module` imports (a name may be a module or an attribute)."""
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: dict[str, str] | None = None) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the package."""
    modules = module_files() if modules is None else modules
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=path)
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        targets = set()
        for name in _imported_names(tree, module, path.endswith("__init__.py")):
            parts = name.split(".")
            # `a.b.c` imports the packages a, a.b and the module a.b.c (when they are ours).
            for end in range(1, len(parts) + 1):
                target = ".".join(parts[:end])
                if target in modules and target not in ancestors:
                    targets.add(target)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None (depth-first search, sorted order)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_graph_reader_sees_lazy_relative_and_package_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.sub import leaf\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("def f():\n    from .. import top\n")
    (package / "top.py").write_text("import os\nfrom pkg.sub.leaf import f\n")
    graph = import_graph(module_files(str(package), "pkg"))
    assert graph == {
        "pkg": {"pkg.sub", "pkg.sub.leaf"},
        "pkg.sub": set(),
        "pkg.sub.leaf": {"pkg.top"},
        "pkg.top": {"pkg.sub", "pkg.sub.leaf"},
    }
    assert find_cycle(graph) == ["pkg.sub.leaf", "pkg.top", "pkg.sub.leaf"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_tf_metaling_has_no_import_cycle():
    graph = import_graph()
    assert "tf_metaling.data.corpora.corpus" in graph  # the package was found
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
