"""Naming schemes and subfolders (imgfetch.store.files), through the real pool."""
from __future__ import annotations

import hashlib

from conftest import FAST, assert_clean, read_manifest
from imgfetch import download
from imgfetch.store.files import safe_stem, target_name


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
