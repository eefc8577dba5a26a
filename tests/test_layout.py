"""The package's layout keeps its promises: each part imports only what its docstring allows.

Every subpackage's ``__init__`` (and every top-level module) ends its docstring with
``May import: imgfetch.x, imgfetch.y`` (or ``nothing else from imgfetch``). A new import that runs
back up the flow, or into another part's private names, fails here with the file and line.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgfetch"
ROOT_FILES = {"__init__.py", "__main__.py"}  # the public face: lazy re-exports and python -m
MAX_MODULE_LINES = 300


def part_of(path: Path) -> str:
    """``engine`` for imgfetch/engine/pool.py, ``urls`` for imgfetch/urls.py."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def declaration(part: str) -> Path:
    folder = PACKAGE / part
    return folder / "__init__.py" if folder.is_dir() else PACKAGE / f"{part}.py"


def allowed_imports(part: str) -> set[str]:
    docstring = ast.get_docstring(ast.parse(declaration(part).read_text())) or ""
    found = re.search(r"^May import: (.*)$", docstring, re.MULTILINE)
    assert found, f"{declaration(part)}: its docstring has no 'May import:' line"
    if found.group(1).strip() == "nothing else from imgfetch":
        return set()
    names = [name.strip() for name in found.group(1).split(",")]
    assert all(name.startswith("imgfetch.") for name in names), found.group(0)
    return {name.removeprefix("imgfetch.") for name in names}


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import of imgfetch in a file."""
    package = ".".join(("imgfetch", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
    return [(line, module, names) for line, module, names in found if module.split(".")[0] == "imgfetch"]


def target_part(module: str, names: list[str]) -> list[str]:
    """The parts an import reaches: ``from imgfetch import x`` reaches x, or the package root."""
    pieces = module.split(".")
    if len(pieces) > 1:
        return [pieces[1]]
    return [name if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists() else "" for name in names]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in ROOT_FILES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_each_module_imports_only_what_its_part_allows(path):
    part = part_of(path)
    allowed = allowed_imports(part) | {part}
    for line, module, names in imports(path):
        for target in target_part(module, names):
            if target == "":  # the package root: only its version string
                assert names == ["__version__"], f"{path}:{line} imports {names} from imgfetch itself"
                continue
            assert target in allowed, f"{path}:{line}: {part} may not import imgfetch.{target}"
            if target != part:
                private = [name for name in names if name.startswith("_")]
                assert not private, f"{path}:{line} reaches into imgfetch.{target}'s private {private}"


def test_the_parts_form_a_flow_without_cycles():
    parts = {part_of(path) for path in MODULES}
    graph = {part: allowed_imports(part) for part in parts}
    assert all(target in parts for targets in graph.values() for target in targets), graph
    done: set[str] = set()

    def visit(part: str, trail: tuple[str, ...]) -> None:
        assert part not in trail, f"import cycle: {' -> '.join((*trail, part))}"
        if part not in done:
            for target in graph[part]:
                visit(target, (*trail, part))
            done.add(part)

    for part in sorted(parts):
        visit(part, ())


def test_the_server_and_the_benchmark_stay_off_the_engine():
    assert allowed_imports("server") == set()
    assert "engine" not in allowed_imports("bench")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path} has {lines} lines"
