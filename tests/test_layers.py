"""The package's layers: every import of a transformer_lab module (at the top of a file or inside a
function) goes to its own layer or one below, and no modules import each other in a circle.

Read from the source with ``ast``: nothing is imported, so the test takes a second.
"""

import ast
import os

from helpers import ROOT

# Bottom to top. A name is a top-level module or package of transformer_lab ('__init__' is the package's
# face, transformer_lab/__init__.py).
LAYERS = [
    {'config', 'library_log', 'backends'},         # parsing, defaults, the UserError family; the libraries' log;
                                                   # code written for one backend's compiler
    {'attention'},                                 # the attention family, knowing no model
    {'models', 'data'},                            # the model table (models/catalog.py), the dataset catalog
    {'decoding', 'attention_maps', 'attention_memory', 'attention_pictures'},
    {'tasks'},                                     # a Task per modality: pipelines, samplers, drawers
    {'sampling'},                                  # a Run and a Request, what every sampler is given
    {'training'},                                  # steps, state, evaluators, validation, the loop
    {'runs', 'benchmarking', 'cli'},
    {'sweeps', 'device_check', '__init__'},
]


def modules() -> dict[str, str]:
    """{dotted module name: path} of every module of the package."""
    found = {}
    for folder, _, names in os.walk(os.path.join(ROOT, 'transformer_lab')):
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                found[dotted.removesuffix('.__init__') if name == '__init__.py' and dotted.count('.') > 1
                      else dotted] = path
    return found


def imports(known: dict[str, str], files: dict[str, str] | None = None) -> dict[str, set[str]]:
    """{module: the package's modules it imports} for each of ``files`` (default: the package's own),
    ``from transformer_lab.x import y`` resolved to the module ``x.y`` where y is one."""
    graph = {}
    for module, path in (files or known).items():
        with open(path) as f:
            tree = ast.parse(f.read())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in known else node.module
                         for alias in node.names]
            else:
                continue
            for name in names:
                while name not in known and '.' in name:
                    name = name.rpartition('.')[0]
                if name in known and name != module and name.startswith('transformer_lab'):
                    targets.add(name)
        graph[module] = targets
    return graph


def layer_of(module: str) -> int:
    part = module.split('.')[1]
    return next(index for index, names in enumerate(LAYERS) if part in names)


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_runs_upward_and_no_modules_import_each_other_in_a_circle():
    graph = imports(modules())
    upward = sorted(f'{module} -> {target}' for module, targets in graph.items() for target in targets
                    if layer_of(target) > layer_of(module))
    assert upward == []
    assert circles(graph) == []


def test_the_checker_finds_an_upward_import_and_a_circle():
    graph = {'transformer_lab.attention.core': {'transformer_lab.training.loop'},
             'transformer_lab.training.loop': {'transformer_lab.training.steps'},
             'transformer_lab.training.steps': {'transformer_lab.training.loop'}}
    assert layer_of('transformer_lab.training.loop') > layer_of('transformer_lab.attention.core')
    assert circles(graph) == [{'transformer_lab.training.loop', 'transformer_lab.training.steps'}]


def test_preparing_data_imports_no_model():
    known = modules()
    graph = imports(known)
    script = imports(known, {'prepare_data': os.path.join(ROOT, 'scripts', 'prepare_data.py')})['prepare_data']
    reached, frontier = set(), list(script)
    while frontier:
        module = frontier.pop()
        if module not in reached:
            reached.add(module)
            frontier.extend(graph[module])
    assert not [module for module in reached if module.startswith(('transformer_lab.models', 'transformer_lab.training'))]
