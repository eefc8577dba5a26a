"""Naming schemes, subfolders and standard input, through the real pool."""
from __future__ import annotations

import hashlib
import subprocess
import sys

from imgfetch import download
from imgfetch.store.files import safe_stem, target_name
from conftest import FAST, assert_clean, read_manifest


def test_hash_index_and_subdirs(server, tmp_path):
    urls = server.image_urls()[:12]
    by_hash = download(urls, tmp_path / "h", naming="hash", workers=1, threads=4, start_method="fork", **FAST)
    for r in by_hash:
        assert r.path.split(".")[0] == r.sha256 == hashlib.sha256((tmp_path / "h" / r.path).read_bytes()).hexdigest()
    spread = download(urls, tmp_path / "s", naming="index", subdirs=5, workers=1, threads=4, start_method="fork",
                      **FAST)
    paths = sorted(r.path for r in spread)
    assert paths[0].startswith("000000/000000001.") and paths[-1].startswith("000002/000000012.")
    folders = {p.split("/")[0] for p in paths}
    assert folders == {"000000", "000001", "000002"}
    assert all(sum(p.startswith(f + "/") for p in paths) <= 5 for f in folders)
    assert_clean(tmp_path / "s", read_manifest(tmp_path / "s" / "manifest.jsonl"))


def test_url_names_never_collide_and_stay_safe():
    names = {target_name("url", url=f"http://h.example.com/{d}/a.jpg", key=hashlib.sha256(d.encode()).hexdigest()[:32],
                         line=1, sha256="", extension=".jpg", columns={}, subdirs=None) for d in ("x", "y")}
    assert len(names) == 2 and all(n.startswith("a-") for n in names)
    assert safe_stem("../../etc/passwd") == "etc_passwd"
    assert safe_stem("COM1") == "image_COM1" and safe_stem("") == "image"


def test_standard_input_list(server, tmp_path):
    data = "\n".join(server.image_urls()[:3]) + "\n"
    done = subprocess.run([sys.executable, "-m", "imgfetch", "get", "-", "-o", str(tmp_path / "o"), "-q",
                           "--start-method", "fork"], input=data, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(read_manifest(tmp_path / "o" / "manifest.jsonl")) == 3


def test_progress_bar_counts_in_the_parent(server, tmp_path, capsys):
    from imgfetch import download

    urls = tmp_path / "u.txt"
    urls.write_text("\n".join(server.image_urls()[:5] + [server.url("/status/404")]) + "\n")
    download(urls, tmp_path / "o", start_method="fork", retries=0, progress=True)
    err = capsys.readouterr().err  # the library draws its bar on stderr (the CLI only on a terminal: test_ux)
    assert "6/6" in err and "ok=5 failed=1" in err
