"""How the packages import: `paddleseg_ext` has no import cycle and its layers import one way
(utils -> components -> runtime -> pipeline -> core -> cli, see its ``__init__``); importing it changes
nothing in PaddleSeg; `panoptic_metrics` never needs paddle, paddleseg or paddleseg_ext (scoring
prediction files with `panoptic_metrics.cli` is checked in tests/panoptic_metrics/test_cli.py)."""
import ast
import functools
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, script_env

PACKAGES = ("paddleseg_ext", "panoptic_metrics")
#: the layers of paddleseg_ext, lowest first; a module may import its own layer and those below
LAYERS = [("utils", "compat"), ("transforms", "datasets", "models", "losses", "postprocess", "evaluation", "visualize"),
          ("runtime",), ("pipeline",), ("core",), ("cli",)]


def package_modules():
    """{module name: file path} of every module of PACKAGES (a package is its ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for d, subdirs, files in os.walk(os.path.join(ROOT, package)):
            subdirs[:] = sorted(s for s in subdirs if s != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    parts = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    modules[".".join(parts)] = os.path.join(d, f)
    return modules


MODULES = package_modules()


def imports_of(name, path):
    """[(imported module, line, at module level)] of every import statement of a module, function-level
    ones included; relative imports resolved; ``from P import n`` names module ``P.n`` when it is one."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = os.path.basename(path) == "__init__.py"
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            targets = [source + "." + a.name if source + "." + a.name in MODULES else source for a in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in top_level) for t in targets]
    return found


@functools.lru_cache(maxsize=None)
def import_graph():
    """{module: {imported module of PACKAGES: first line}}; an import of a sub-module names its module
    (``import paddleseg_ext.core.val`` -> paddleseg_ext.core.val)."""
    graph = {}
    for name, path in MODULES.items():
        edges = {}
        for target, line, _ in imports_of(name, path):
            while target and target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]  # `import a.b.func`-like names: the module holding them
            if target in MODULES and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """A cycle [m0, m1, ..., m0] of the graph, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
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


def test_graph_sees_relative_function_level_and_reexport_imports():
    graph = import_graph()
    assert "paddleseg_ext.pipeline.predictor" in graph["paddleseg_ext.pipeline"]  # __init__ re-export
    assert "paddleseg_ext.runtime" in graph["paddleseg_ext.pipeline.predictor"]  # `from ..runtime import`
    assert "paddleseg_ext.postprocess.panoptic_ops" in graph["paddleseg_ext.postprocess.panoptic_layer"]
    # `from ..datasets.cityscapes_meta import ...` inside a method
    assert "paddleseg_ext.datasets.cityscapes_meta" in graph["paddleseg_ext.evaluation.suite"]
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())  # (cached: do not modify the graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _layer(module):
    parts = module.split(".")
    if parts[0] != "paddleseg_ext" or len(parts) == 1:
        return None
    return [i for i, names in enumerate(LAYERS) if parts[1] in names][0]


def test_layers_import_one_way():
    wrong = []
    for module, edges in import_graph().items():
        here = _layer(module)
        for target, line in edges.items():
            there = _layer(target)
            if here is not None and there is not None and there > here:
                wrong.append("{} (line {}) imports {}".format(module, line, target))
    assert not wrong, "a layer imports a higher one:\n" + "\n".join(wrong)


def test_panoptic_metrics_needs_no_paddle():
    """panoptic_metrics never imports paddleseg_ext, and paddle / paddleseg only inside functions."""
    wrong = []
    for name, path in MODULES.items():
        if not name.startswith("panoptic_metrics"):
            continue
        for target, line, top in imports_of(name, path):
            root = target.split(".")[0]
            if root == "paddleseg_ext" or (root in ("paddle", "paddleseg") and top):
                wrong.append("{} line {}: {}".format(name, line, target))
    assert not wrong, wrong


# run with `python -c`: imports modules, reports what got loaded and whether PaddleSeg's loader moved
IMPORT_RUN = r'''
import importlib, json, sys
names = sys.argv[1:]
before = None
if names[0] == "paddleseg_ext":
    import zlib, cv2  # as paddleseg_ext/__init__.py does first (Paddle 2.6's zlib clash)
    import paddleseg.utils, paddleseg.utils.utils as ps_utils
    before = [id(ps_utils.load_pretrained_model), id(paddleseg.utils.load_pretrained_model)]
for name in names:
    importlib.import_module(name)
after = None
if before is not None:
    after = [id(ps_utils.load_pretrained_model), id(paddleseg.utils.load_pretrained_model)]
    module = ps_utils.load_pretrained_model.__module__
else:
    module = None
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"paddle", "paddleseg", "paddleseg_ext"})
print("RESULT " + json.dumps({"same": before == after, "module": module, "loaded": loaded}))
'''


def _import_in_subprocess(names):
    p = subprocess.run([sys.executable, "-c", IMPORT_RUN] + names, cwd=ROOT, env=script_env(), capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_every_module(package):
    """Every module imports in a fresh interpreter: panoptic_metrics without paddle or paddleseg;
    paddleseg_ext (all of it: commands, loops, pipeline) leaving PaddleSeg's `load_pretrained_model` as it
    was (the one-line pretrained errors are a scoped context manager of the runtime)."""
    names = sorted(n for n in MODULES if n.split(".")[0] == package)
    result = _import_in_subprocess(names)
    if package == "panoptic_metrics":
        assert result["loaded"] == []
    else:
        assert result == {"same": True, "module": "paddleseg.utils.utils",
                          "loaded": ["paddle", "paddleseg", "paddleseg_ext"]}
