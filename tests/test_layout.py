"""The tree shows the pipeline: no import cycle, a package per stage, unique module names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections import Counter
from pathlib import Path

import tuneline
from tuneline.pipeline import STAGES

PACKAGE = Path(tuneline.__file__).parent
# Stage packages: the pipeline's stages (track lives in register's package) and serve.
STAGE_PACKAGES = ("ingest", "synthesize", "index", "curate", "train", "evaluate", "register",
                  "serve")
# The names every stage package repeats on purpose.
SHARED_NAMES = {"stage.py", "config.py", "__init__.py"}


def module_name(path: Path) -> str:
    parts = ("tuneline",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports anywhere in it (function bodies and TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_module_imports_in_a_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    # index.stage imports the embedder only inside the function that needs it.
    assert "tuneline.rag.embed" in graph["tuneline.index.stage"]


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name not in SHARED_NAMES)
    assert [n for n, count in names.items() if count > 1] == []


def test_every_stage_package_has_its_stage_and_config() -> None:
    for stage in STAGE_PACKAGES:
        assert (PACKAGE / stage / "stage.py").is_file(), stage
        assert (PACKAGE / stage / "config.py").is_file(), stage


def test_the_pipeline_lists_every_stage_in_order() -> None:
    assert STAGES == ("ingest", "synthesize", "index", "curate", "train", "evaluate", "track",
                      "register")


def test_every_module_imports() -> None:
    failures = {}
    for info in pkgutil.walk_packages(tuneline.__path__, "tuneline."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not the first
            failures[info.name] = f"{type(exc).__name__}: {exc}"
    assert failures == {}


STAGE_MODULES = {"ingest": "tuneline.ingest.stage", "synthesize": "tuneline.synthesize.stage",
                 "index": "tuneline.index.stage", "curate": "tuneline.curate.stage",
                 "train": "tuneline.train.stage", "evaluate": "tuneline.evaluate.stage",
                 "track": "tuneline.register.track", "register": "tuneline.register.stage"}
# An upstream artifact parameter is named after the stage that made it.
UPSTREAM = {"ingested": "ingest", "synthesized": "synthesize", "indexed": "index",
            "curated": "curate", "trained": "train", "evaluated": "evaluate",
            "tracked": "track"}


def test_every_stage_follows_the_written_protocol() -> None:
    """run(cfg, <upstream artifacts in pipeline order>, out_dir, force=False, *, options)."""
    assert set(STAGE_MODULES) == set(STAGES)
    for stage, module_path in STAGE_MODULES.items():
        module = importlib.import_module(module_path)
        params = list(inspect.signature(module.run).parameters.values())
        names = [p.name for p in params]
        assert names[0] == "cfg", stage
        out_dir = names.index("out_dir")
        upstream = names[1:out_dir]
        assert all(name in UPSTREAM for name in upstream), (stage, upstream)
        order = [STAGES.index(UPSTREAM[name]) for name in upstream]
        assert order == sorted(order) and all(i < STAGES.index(stage) for i in order), stage
        assert all("Artifact" in str(p.annotation) for p in params[1:out_dir]), stage
        force = params[out_dir + 1]
        assert (force.name, force.default) == ("force", False), stage
        assert all(p.kind is p.KEYWORD_ONLY for p in params[out_dir + 2:]), stage
        source = inspect.getsource(module.run)
        assert "def work(tmp: Path) -> StageResult:" in source, stage
        assert f'run_stage("{stage}", out_dir,' in source, stage
