"""pyproject.toml: a wheel really builds from it, with the setuptools it asks for, and installs what users run."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli before 3.11, so it is always there
    import tomli as tomllib

import imgfetch

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def test_a_license_string_asks_for_setuptools_77_or_newer():
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    # A plain string is PEP 639's SPDX form; setuptools before 77 rejects it ("must be a table").
    assert isinstance(data["project"]["license"], str)
    [setuptools] = [r for r in data["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    floor = re.search(r">=\s*(\d+)", setuptools)
    assert floor and int(floor.group(1)) >= 77, setuptools


def test_a_wheel_builds_offline_with_the_installed_setuptools_and_holds_the_package(tmp_path):
    # A copy of what the build reads, so the checkout gets no build/ or egg-info; setuptools'
    # PEP 517 hook, as pip calls it without build isolation (the test extra brings setuptools>=77).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "imgfetch", source / "imgfetch", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as hook; "
                                                  "print(hook.build_wheel(sys.argv[1]))", str(tmp_path / "dist")],
                           cwd=source, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = tmp_path / "dist" / built.stdout.strip().splitlines()[-1]
    assert wheel.name == f"imgfetch-{imgfetch.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"imgfetch-{imgfetch.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {"imgfetch/__init__.py", "imgfetch/py.typed", "imgfetch/engine/worker.py"} <= names
    assert not any(name.startswith("tests/") for name in names)
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.10" in metadata
    assert re.search(r"^imgfetch = imgfetch\.cli:main$", entry_points, re.M)  # the command users run
