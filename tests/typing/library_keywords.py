"""The library's keyword arguments as type checkers see them: mypy (in .ci/run) checks this file, never run.

Each ``type: ignore`` must be needed (pyproject sets warn_unused_ignores here): if mypy stopped seeing a
misspelled or misplaced option, the ignore would be unused and mypy would fail.
"""
from __future__ import annotations

from imgfetch import Downloader, download, fetch, iter_download

URL = "http://127.0.0.1:8000/img/0.jpg"

fetch(URL, "out", timeout=5, verify="full", headers={"Accept": "image/*"}, progress=False)
download([URL], "out", workers=4, resize=256, resize_mode="center_crop", output_format="webdataset")
Downloader("out", threads=8, executor="process")

fetch(URL, "out", timout=5)  # type: ignore[call-arg]
fetch(URL, "out", workers=4)  # type: ignore[call-arg]  # a run's option, not one URL's
fetch(URL, "out", verify="quick")  # type: ignore[arg-type]
download([URL], "out", threads="8")  # type: ignore[arg-type]
iter_download([URL], "out", output_format="zip")  # type: ignore[arg-type]
Downloader("out", progress=True)  # type: ignore[call-arg]  # a Downloader draws no bar
