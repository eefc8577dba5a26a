"""pyproject.toml: what it declares must be buildable by the setuptools it asks for."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_a_license_string_asks_for_setuptools_77_or_newer():
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    # A plain string is PEP 639's SPDX form; setuptools before 77 rejects it ("must be a table").
    assert isinstance(data["project"]["license"], str)
    [setuptools] = [r for r in data["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    floor = re.search(r">=\s*(\d+)", setuptools)
    assert floor and int(floor.group(1)) >= 77, setuptools
