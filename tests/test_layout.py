"""What the import-layers contract (pyproject's [tool.importlinter], run by .ci/run) cannot say.

The layers themselves are that contract's; here: no module reaches into another part's private names or takes
anything but the version from the package root (whose names are lazy re-exports), and modules stay small.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgfetch"
ROOT_FILES = {"__init__.py", "__main__.py"}  # the public face: lazy re-exports and python -m
MAX_MODULE_LINES = 300
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in ROOT_FILES)


def part_of(path: Path) -> str:
    """``engine`` for imgfetch/engine/pool.py, ``urls`` for imgfetch/urls.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def is_part(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def imports_from_imgfetch(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every ``from imgfetch... import`` in a file."""
    package = ".".join(("imgfetch", *path.relative_to(PACKAGE).parent.parts)).split(".")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *([base] if base else [])])
            if base.split(".")[0] == "imgfetch":
                found.append((node.lineno, base, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_reaches_into_another_parts_private_names(path):
    for line, module, names in imports_from_imgfetch(path):
        if module == "imgfetch":  # a part (``from .. import urls``) is the contract's; the root's own names are lazy
            lazy = [name for name in names if not is_part(name) and name != "__version__"]
            assert not lazy, f"{path}:{line} imports {lazy} from imgfetch itself"
        elif module.split(".")[1] != part_of(path):
            private = [name for name in names if name.startswith("_")]
            assert not private, f"{path}:{line} reaches into {module}'s private {private}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path} has {lines} lines"


def test_the_readme_maps_every_module():
    """The README's Architecture section is the one map of the package: a newcomer finds every module there
    under its package (the packages' __init__ docstrings say one line and point to it)."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Architecture"):readme.index("\n## ", readme.index("## Architecture") + 1)]
    entries = {line.split(":")[0].strip("- `"): line for line in section.split("\n- ")[1:]}
    unmapped = []
    for path in MODULES:
        if path.name == "__init__.py":
            continue
        parts = path.relative_to(PACKAGE).parts
        entry = section if len(parts) == 1 else next((text for name, text in entries.items() if name == f"{parts[0]}/"), "")
        if f"`{path.name}`" not in entry and f"`{path.stem}`" not in entry:
            unmapped.append(path.relative_to(PACKAGE).as_posix())
    assert not unmapped, f"not in the README's map: {unmapped}"
