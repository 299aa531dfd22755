"""docs/architecture.md as built: its worked example of a new rule runs as written and keeps the rules' contract,
no module of abm imports another in a circle, and one stepping loop steps every model of the project's packages."""
from __future__ import annotations

import ast
import math
import os
from pathlib import Path

import pytest

from abm import streams
from abm.rules import DEFAULT_RULES
from abm.step import COMPARTMENTS, layer_names
from tests.test_api import python_blocks
from tests.test_rules import covers, Probe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The namespace after running the fenced python blocks of docs/architecture.md in order (in a folder that sees configs/)."""
    folder = tmp_path_factory.mktemp("architecture")
    (folder / "configs").symlink_to(REPO / "configs")
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in python_blocks(REPO / "docs" / "architecture.md"):
            exec(compile(block, "docs/architecture.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_the_new_rule_kills_its_share_of_the_live_cells_at_its_hour(example):
    killed, live = int(example["model"].totals.drug_kills), example["live_before"]
    share = example["Irradiation"].KILLED
    assert live > 50 and abs(killed - share * live) < 4 * math.sqrt(share * (1 - share) * live), (killed, live)
    assert example["model"].rule("irradiation").name == "irradiation"


def test_the_new_rule_keeps_the_rules_contract(example):
    """Its stream is in the reserved range of a cell step's rules and no default rule owns it; what it reads is
    written before it; a probed run shows it touches only what it declares."""
    rule = example["Irradiation"]
    (ids,) = rule.streams
    block = next(reserved for reserved in streams.RANGES if ids.start in reserved)
    assert block.first == 1 and ids.stop - 1 in block
    assert all(set(ids).isdisjoint(owned) for other in DEFAULT_RULES for owned in other.streams)
    assert {value for name, value in vars(streams).items() if name.startswith("STREAM_")}.isdisjoint(ids)  # unnamed
    written = set(layer_names(example["model"].config)) | set(COMPARTMENTS)  # the set-up's
    for other in example["rules"][: example["rules"].index(rule)]:
        written |= other.writes
    assert rule.reads <= written
    model = example["TumorModel"](example["model"].config, rules=(rule,))
    log: list = []
    model.context.lattice = Probe(model.context.lattice, log, [rule.name])
    for _ in range(13):
        model.context.new_step(model.steps)
        model.rules[0].apply(model.context)
        model.steps += 1
    assert log and all(covers(rule.writes if access == "set" else rule.reads | rule.writes, array)
                       for _, access, array in log)


def imports_of(path: Path, package: str) -> set[str]:
    """The ``abm`` modules that module ``path`` imports when it is loaded (imports under ``if TYPE_CHECKING`` and
    inside functions excluded: they run later)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for item in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(item, ast.ImportFrom) and item.module and (item.module + ".").startswith(package):
                names = [item.module] + [f"{item.module}.{alias.name}" for alias in item.names]
                found |= {name for name in names if (REPO / (name.replace(".", "/") + ".py")).exists()
                          or (REPO / name.replace(".", "/") / "__init__.py").exists()}
            elif isinstance(item, ast.Import):
                found |= {alias.name for alias in item.names if alias.name.startswith(package)}
    return found


def abm_import_graph() -> dict[str, set[str]]:
    """abm module -> the abm modules it imports when loaded."""
    modules = {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
               for path in (REPO / "abm").rglob("*.py")}
    return {name: {other for other in imports_of(path, "abm.") if other in modules and other != name}
            for name, path in modules.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a circle (first = last), or None."""
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                return trail[trail.index(other):] + [name, other] if other in trail else [name, other]
            if other not in state:
                circle = visit(other, trail + [name])
                if circle:
                    return circle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            circle = visit(name, [])
            if circle:
                return circle
    return None


def test_no_import_circle_among_abm_modules():
    graph = abm_import_graph()
    assert {"abm.rules", "abm.step", "abm.measurement"} <= graph["abm.model"]  # the parse sees the imports
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))
    assert graph["abm.rules"].isdisjoint({"abm.model", "abm.immunity", "abm.therapy"})
    broken = {name: set(edges) for name, edges in graph.items()}
    broken["abm.step"].add("abm.model")  # what the rules' old import of the model was
    assert find_circle(broken) is not None


#: The methods that advance a model: its step, and Mesa's loop over it.
STEPPING_METHODS = frozenset({"step", "run_model"})


def model_steps(source: str, name: str) -> list[str]:
    """``NAME:LINE FUNCTION`` of each call in the module ``source`` that advances a model: ``X.step()`` without
    arguments (a field solver's ``step`` takes its field) or ``X.run_model(...)``; FUNCTION is the innermost function
    or method around it, with its class (``Stepping.run``)."""
    found: list[str] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = (*scope, node.name)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in STEPPING_METHODS
                and (node.func.attr == "run_model" or not (node.args or node.keywords))):
            found.append(f"{name}:{node.lineno} {'.'.join(scope[-2:])}")
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(source), ())
    return found


def test_only_the_runners_stepping_loop_steps_a_model():
    """One stepping loop (docs/architecture.md, "Run directories, failures and interruptions"): in the project's
    packages only ``abm.runner.Stepping.run`` calls a model's ``step()``; a run, a resumed run, a trunk and the live
    explorer all step through it. (Tests and benchmarks step models directly.)"""
    calls = [call for package in ("abm", "viz", "kernels") for path in sorted((REPO / package).rglob("*.py"))
             for call in model_steps(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert [call.split(" ")[1] for call in calls] == ["Stepping.run"], calls
    assert calls[0].startswith("abm/runner.py:")
    loop = "class Live:\n    def advance(self):\n        while self.model.steps < 6:\n            self.model.step()\n"
    assert model_steps(loop, "abm/live.py") == ["abm/live.py:4 Live.advance"]  # a loop of its own would fail
    assert model_steps("model.run_model()\nsolver.step(u, source)\n", "m.py") == ["m.py:1 "]
