"""The floors of the code hold: imports point down only, no import cycle between files, the
doors reach the pipeline through the service layer alone, and nothing below the doors reads
the environment. Read from the source (any import, also inside a function, counts)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"ocr": 0, "storage": 0, "pipeline": 1, "api": 2}


def modules() -> dict[str, Path]:
    found = {}
    for top in RANK:
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names |= {target} | {f"{target}.{a.name}" for a in node.names}
    return names


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges = {}
    for module, path in mods.items():
        deps = set()
        for name in imported(path, module):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != module and not name.startswith(module + ".") and not module.startswith(name + "."):
                deps.add(name)
        edges[module] = deps
    return edges


def test_imports_point_down_and_ocr_and_storage_stay_apart():
    against = [f"{m} -> {d}" for m, deps in graph().items() for d in deps
               if m.split(".")[0] != d.split(".")[0] and RANK[d.split(".")[0]] >= RANK[m.split(".")[0]]]
    assert against == []


def test_no_import_cycle_between_files():
    edges = graph()
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for dep in edges[node]:
            if state.get(dep) == "open":
                cycles.append(trail[trail.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_doors_use_the_service_layer_only():
    edges = graph()
    allowed = {"pipeline", "pipeline.service", "pipeline.models", "pipeline.errors", "pipeline.config"}
    reach = {d for m, deps in edges.items() if m.startswith("api") for d in deps if d.startswith("pipeline")}
    assert reach <= allowed, reach - allowed


def test_signature_validation_never_imports_the_signers():
    edges = graph()
    seen, todo = set(), ["pipeline.signing.validation"]
    while todo:
        for dep in edges[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert not seen & {"pipeline.signing.keys", "pipeline.signing.pades", "pipeline.signing.appearance",
                        "pipeline.signing.devpki"}


def test_only_the_settings_and_the_start_up_read_or_change_the_environment():
    readers = set()
    for module, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if "os.environ" in text or "getenv" in text:
            readers.add(module)
    # config reads SOHOA_* once; the command line and the page workers set tesseract's thread limit at start-up
    assert readers <= {"pipeline.config", "api.cli", "pipeline.executor"}, readers
