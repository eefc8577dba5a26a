"""Resize, filters and dedup through real worker processes against the built-in server."""
from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

import imgfetch
from conftest import FAST, assert_clean, read_manifest
from imgfetch import download


# fork, and forkserver for a fresh interpreter that imports the transform in its workers (as spawn would: the
# pool under spawn is in test_download.py)
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_images_are_saved_resized_and_reencoded(server, tmp_path, start_method):
    out = tmp_path / "out"
    urls = server.image_urls()[:12]
    results = download(urls, out, workers=2, threads=4, start_method=start_method, resize=48,
                       resize_mode="center_crop", encode_format="webp", encode_quality=70, **FAST)
    assert [r.status for r in results] == ["ok"] * 12
    for i, record in enumerate(results):
        data = (out / record.path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size) == ("WEBP", (48, 48))
        assert record.path.endswith(".webp") and (record.format, record.width, record.height) == ("WEBP", 48, 48)
        assert record.sha256 == hashlib.sha256(data).hexdigest() and record.bytes == len(data)
        with Image.open(io.BytesIO(server.image_bytes(i))) as original:
            assert (record.original_width, record.original_height) == original.size
    saved = read_manifest(out / "manifest.jsonl")
    assert {(r["original_width"], r["original_height"]) for r in saved} == {
        (r.original_width, r.original_height) for r in results}


def test_original_bytes_are_kept_when_nothing_changes(server, tmp_path):
    out = tmp_path / "out"
    urls = server.image_urls()[:8]  # JPEG, PNG, WebP and GIF, all at most 320 px
    results = download(urls, out, workers=1, threads=4, resize=400, resize_only_if_bigger=True, **FAST)
    for i, record in enumerate(results):
        assert record.sha256 == hashlib.sha256(server.image_bytes(i)).hexdigest()
        assert (out / record.path).read_bytes() == server.image_bytes(i)
        assert (record.width, record.height) == (record.original_width, record.original_height)


def test_filtered_images_get_a_record_and_no_file(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = fresh_server.image_urls()
    sizes = [Image.open(io.BytesIO(fresh_server.image_bytes(i))).size for i in range(len(urls))]
    results = download(urls, out, workers=1, threads=8, min_image_size=150, max_aspect_ratio=1.5, **FAST)
    for record, (width, height) in zip(results, sizes):
        small, elongated = min(width, height) < 150, max(width, height) > 1.5 * min(width, height)
        if small or elongated:
            assert (record.status, record.error_kind, record.path) == ("failed", "filtered", None)
            reason = "too small" if small else "too elongated"
            assert record.error.startswith(f"{reason}: {width}x{height}")
        else:
            assert record.ok
    filtered = [r for r in results if r.error_kind == "filtered"]
    assert 0 < len(filtered) < len(urls)
    reasons = [line.split(" × ", 1)[1] for line in results.summary().splitlines() if " × " in line]
    assert set(reasons) == {"too small: WxH pixels < --min-image-size 150",
                            "too elongated: WxH pixels > --max-aspect-ratio 1.5"}
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    fresh_server.stats.reset()
    again = download(urls, out, workers=1, threads=8, min_image_size=150, max_aspect_ratio=1.5, **FAST)
    assert fresh_server.stats.snapshot()["requests"] == 0  # filtered is permanent: not fetched again
    assert [r.error for r in again] == [r.error for r in results]


def copies(server, i: int) -> list[str]:
    """Three URLs that serve image i's very bytes."""
    ext = server.image_urls()[i].rsplit(".", 1)[1]
    return [server.url(f"/{route}/{i}.{ext}") for route in ("img", "disposition", "headers")]


def test_dedup_exact_keeps_the_first_across_a_resume(fresh_server, tmp_path):
    out = tmp_path / "out"
    flaky = fresh_server.url("/flaky/1/once/1.png")  # 503 at first, then image 1's bytes
    first = download([copies(fresh_server, 1)[0], fresh_server.url("/img/2.webp"), flaky], out, workers=1,
                     threads=2, **{**FAST, "retries": 0})
    assert [r.status for r in first] == ["ok", "ok", "failed"]
    urls = [*copies(fresh_server, 1), fresh_server.url("/img/2.webp"), *copies(fresh_server, 3), flaky]
    results = download(urls, out, workers=2, threads=4, dedup="exact", **FAST)
    assert results[0].skipped and results[0].ok and results[3].skipped
    for record in (*results[1:3], results[7]):  # copies of what the earlier run kept
        assert (record.status, record.path, record.dup_of) == ("duplicate", None, first[0].key)
        assert record.error == "same image as line 1" and record.sha256 == first[0].sha256
    kept = [r for r in results[4:7] if r.status == "ok"]
    copies_of_3 = [r for r in results[4:7] if r.status == "duplicate"]
    assert len(kept) == 1 and len(copies_of_3) == 2 and {r.dup_of for r in copies_of_3} == {kept[0].key}
    assert results.counts["duplicate"] == 5 and "duplicate 5" in results.summary()
    newest = imgfetch.read_manifest(out)  # one record per URL: the copy replaces the earlier failure
    assert [(r["url"], r["status"]) for r in newest] == [(r.url, r.status) for r in results]
    files = sorted(p.name for p in out.iterdir() if p.name != "manifest.jsonl")
    assert files == sorted([first[0].path, first[1].path, kept[0].path])  # no copy left on disk
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    fresh_server.stats.reset()
    again = download(urls, out, workers=2, threads=4, dedup="exact", **FAST)
    assert fresh_server.stats.snapshot()["requests"] == 0  # copies stay copies, without fetching
    assert [(r.status, r.dup_of) for r in again] == [(r.status, r.dup_of) for r in results]
    assert all(r.skipped for r in again) and "duplicate 5 (5 from earlier runs)" in again.summary()


def test_dedup_with_naming_hash_never_removes_the_shared_file(fresh_server, tmp_path):
    out = tmp_path / "out"
    results = download(copies(fresh_server, 5), out, workers=1, threads=3, dedup="exact", naming="hash", **FAST)
    assert sorted(r.status for r in results) == ["duplicate", "duplicate", "ok"]
    kept = next(r for r in results if r.ok)
    assert (out / kept.path).read_bytes() == fresh_server.image_bytes(5)


def test_dedup_phash_finds_the_same_picture_in_other_bytes(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = [fresh_server.url("/img/4.jpg"), fresh_server.url("/requality/30/4.jpg"),
            fresh_server.url("/requality/60/4.jpg"), fresh_server.url("/img/8.jpg")]
    first = download(urls[:1], out, workers=1, threads=1, dedup="phash:6", **FAST)
    assert first[0].ok and len(first[0].phash) == 16
    results = download(urls, out, workers=2, threads=2, dedup="phash:6", **FAST)
    assert results[0].skipped and results[3].ok  # another picture is no near-duplicate
    for record in results[1:3]:
        assert record.status == "duplicate" and record.dup_of == first[0].key
        assert record.error.startswith("near-duplicate of line 1 (phash distance ")
        assert record.sha256 != first[0].sha256
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted([first[0].path, results[3].path])


def test_dedup_phash_without_imagehash_is_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_imagehash(name, *args, **kwargs):
        if name == "imagehash":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_imagehash)
    with pytest.raises(ValueError, match=r"^dedup phash:4 needs imagehash: pip install 'imgfetch\[phash\]'$"):
        download([], "unused", dedup="phash:4")


def test_fetch_resizes_in_process(server, tmp_path):
    record = imgfetch.fetch(server.url("/img/1.png"), tmp_path, resize=32, resize_mode="keep_ratio_largest",
                            encode_format="jpg", **FAST)
    with Image.open(record.abspath) as im:
        assert im.format == "JPEG" and max(im.size) == 32 and im.size == (record.width, record.height)
    with Image.open(io.BytesIO(server.image_bytes(1))) as original:
        assert (record.original_width, record.original_height) == original.size
