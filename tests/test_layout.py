"""The layout shows five systems on one core, in files a newcomer can read."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "timetok"
SYSTEMS = ("tokenizer", "forecast", "mae", "setvae", "doppler")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(), str(path))
    return trees


def imports(tree: ast.AST, top_level_only: bool = False) -> set[str]:
    """The timetok modules a module imports (``from timetok.x import y`` names ``timetok.x``
    and, where ``y`` is a module, ``timetok.x.y``)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("timetok")}


@pytest.fixture(scope="module")
def trees():
    return modules()


def test_each_system_keeps_its_model_recipe_pipeline_evaluation_and_commands_together():
    for system in SYSTEMS:
        names = {p.stem for p in (PACKAGE / system).glob("*.py")}
        assert {"model", "recipe", "pipeline", "evaluate", "cli"} <= names, system


def test_the_core_knows_no_system(trees):
    for name, tree in trees.items():
        if name.startswith("timetok.core"):
            systems = {i.split(".")[1] for i in imports(tree)} & set(SYSTEMS)
            assert not systems, f"{name} imports {systems}"


def test_no_module_imports_itself_through_others(trees):
    graph = {name: {i for i in imports(tree) if i in trees and i != name}
             for name, tree in trees.items()}
    # A package's __init__ is not an edge of its own: importing timetok.x.y runs it anyway.
    graph = {name: {i for i in edges if not name.startswith(i + ".")}
             for name, edges in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_files_and_functions_stay_readable(trees):
    long_files = [f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert long_files == []
    long_functions = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1}"
        for name, tree in trees.items() for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long_functions == []


def test_a_pipeline_loads_no_training_machinery_when_imported(trees):
    for system in SYSTEMS:
        top = imports(trees[f"timetok.{system}.pipeline"], top_level_only=True)
        training = {i for i in top
                    if i.startswith(("timetok.core.train", f"timetok.{system}.recipe"))}
        assert not training, f"timetok.{system}.pipeline imports {training} at load"


def test_the_five_pipelines_share_one_contract_and_import_from_timetok():
    import timetok

    names = ("TimeSeriesTokenizer", "Forecaster", "Classifier", "MortalityClassifier",
             "SpectrogramGenerator")
    for system, name in zip(SYSTEMS, names, strict=True):
        pipeline = getattr(timetok, name)
        assert pipeline.__module__ == f"timetok.{system}.pipeline"
        assert callable(pipeline.from_pretrained) and callable(pipeline.save_pretrained), name
    assert set(names) <= set(timetok.__all__)
