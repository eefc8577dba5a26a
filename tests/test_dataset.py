"""Datasets: WebDataset and parquet shards read back with the webdataset library and pyarrow, parquet lists,
captions, folders of lists, and shards that stay readable through a SIGKILL and a Ctrl-C."""
from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from conftest import FAST, read_manifest, wait_for
from imgfetch import ImgFetchError, Options, download, fetch
from imgfetch.cli import main
from imgfetch.server import ImageServer

DATASET = dict(FAST, workers=2, threads=4, start_method="fork")


def caption_list(path: Path, urls: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "text", "id"])
        for i, url in enumerate(urls):
            writer.writerow([url, f"a picture, number {i} é", f"id{i}"])
    return path


def newest(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in read_manifest(out / "manifest.jsonl")}


def shard_rows(out: Path) -> list[dict]:
    """Every row of every shard's parquet (without the image bytes)."""
    rows = []
    for path in sorted(out.glob("[0-9]*.parquet")):
        table = pq.read_table(path)
        rows += table.drop_columns([c for c in ("image",) if c in table.column_names]).to_pylist()
    return rows


def tar_samples(out: Path) -> list[dict]:
    """Every sample of every tar, read with the webdataset library, images decoded by Pillow."""
    tars = sorted(str(p) for p in out.glob("*.tar"))
    with warnings.catch_warnings():
        # The webdataset library (0.2 to 1.0) leaves each tar it has read to the garbage collector to close.
        warnings.simplefilter("ignore", ResourceWarning)
        samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil")) if tars else []
        gc.collect()
    return samples


def assert_no_temporary_files(out: Path) -> None:
    left = [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".imgfetch-tmp")]
    assert not left


def test_webdataset_shards_read_back_with_the_webdataset_library(server, tmp_path):
    urls = [*server.image_urls()[:45], server.url("/status/404"), server.url("/status/404?x=2"), server.url("/html-as-jpeg")]
    listing = caption_list(tmp_path / "list.csv", urls)
    out = tmp_path / "out"
    results = download(listing, out, output_format="webdataset", shard_size=10, caption_column="text",
                       keep_columns="id", **DATASET)
    assert len(results.ok) == 45 and len(results.failed) == 3
    samples = tar_samples(out)
    by_sample = {s["__key__"]: s for s in samples}
    assert len(by_sample) == len(samples) == 45  # every ok record's sample is in exactly one tar
    for record in results.ok:
        sample = by_sample[record.sample]
        assert Path(sample["__url__"]).name == record.shard
        (image,) = [sample[ext] for ext in ("jpg", "png", "webp", "gif") if ext in sample]
        assert isinstance(image, Image.Image) and image.size == (record.width, record.height)
        assert sample["txt"] == record.columns["text"] == f"a picture, number {record.line - 1} é"
        meta = sample["json"]
        assert (meta["key"], meta["url"], meta["url_key"], meta["sha256"]) == (record.sample, record.url, record.key,
                                                                                record.sha256)
        assert (meta["caption"], meta["id"], meta["width"], meta["format"]) == (record.columns["text"], f"id{record.line - 1}",
                                                                                record.width, record.format)
    with tarfile.open(out / results.ok[0].shard) as tar:  # the image bytes are the server's, unchanged
        member = tar.extractfile(next(m for m in tar if m.name.startswith(results.ok[0].sample + ".")))
        assert hashlib.sha256(member.read()).hexdigest() == results.ok[0].sha256
    # Shards stay full when URLs fail: each worker's last shard may be partial, every other one is full.
    counts = sorted(sum(1 for s in samples if Path(s["__url__"]).name == tar.name) for tar in out.glob("*.tar"))
    assert sum(counts) == 45 and all(n == 10 for n in counts[2:]) and sorted(p.stem for p in out.glob("*.tar")) == [
        f"{n:05d}" for n in range(len(counts))]
    rows = shard_rows(out)
    assert sorted(r["url"] for r in rows) == sorted(r.url for r in results)  # one row per URL, failures included
    failed = {r["url"]: r for r in rows if r["status"] != "ok"}
    assert {r["error_message"] for r in failed.values()} >= {"HTTP 404 Not Found"}
    assert all(r["key"] is None and r["error_kind"] for r in failed.values())
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    assert sum(s["successes"] for s in stats) == 45 and sum(s["failed"] for s in stats) == 3
    assert sum(s["failure_reasons"].get("HTTP 404 Not Found", 0) for s in stats) == 2
    assert_no_temporary_files(out)


def test_parquet_output_holds_the_images_and_a_rerun_fetches_nothing(fresh_server, tmp_path):
    urls = [*fresh_server.image_urls()[:12], fresh_server.url("/status/404")]
    out = tmp_path / "out"
    results = download(urls, out, output_format="parquet", shard_size=4, **DATASET)
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))])
    assert table.num_rows == 13 and not list(out.glob("*.tar"))
    by_key = {row["key"]: row for row in table.to_pylist() if row["status"] == "ok"}
    for record in results.ok:
        row = by_key[record.sample]
        assert hashlib.sha256(row["image"]).hexdigest() == record.sha256
        assert Image.open(io.BytesIO(row["image"])).size == (record.width, record.height)
    shards = sorted(p.name for p in out.iterdir())
    fresh_server.stats.reset()
    again = download(urls, out, output_format="parquet", shard_size=4, **DATASET)
    assert fresh_server.stats.requests == 0 and len(again.skipped) == 13  # resume per URL: the shards are there
    assert sorted(p.name for p in out.iterdir()) == shards and again.ok[0].sample == results.ok[0].sample


def test_show_reads_thumbnails_from_the_shards(server, tmp_path):
    results = download(server.image_urls()[:6], tmp_path / "out", output_format="webdataset", **DATASET)
    sheet = results.show(6, columns=6, cell=64)
    files = download(server.image_urls()[:6], tmp_path / "files", **DATASET).show(6, columns=6, cell=64)
    thumbnails = (0, 0, sheet.width, 8 + 64)  # the row of thumbnails, above their labels (which name the shard)
    assert sheet.crop(thumbnails).tobytes() == files.crop(thumbnails).tobytes()
    assert len(sheet.crop(thumbnails).getcolors(1 << 20)) > 100  # pictures, not blanks saying "file missing"


def test_parquet_list_with_captions_and_a_folder_of_lists(server, tmp_path):
    urls = server.image_urls()[:14]
    lists = tmp_path / "lists"
    lists.mkdir()
    table = pa.table({"URL": urls[:9] + [None], "TEXT": [f"caption {i}" for i in range(10)]})
    pq.write_table(table, lists / "a.parquet", row_group_size=3)  # read a row group at a time
    (lists / "b.jsonl").write_text("".join(json.dumps({"url": u, "TEXT": f"more {i}"}) + "\n"
                                           for i, u in enumerate(urls[9:])))
    (lists / "notes.md").write_text("not a list\n")
    out = tmp_path / "out"
    results = download(str(lists), out, url_column="URL", url_key="url", caption_column="TEXT",
                       output_format="webdataset", **DATASET)
    assert [r.line for r in results] == list(range(1, 16))  # numbered as one list, files in name order
    assert results[9].status == "invalid" and results[9].error == "no URL in column 'URL'"
    assert [r.columns["source"] for r in results] == ["a.parquet"] * 10 + ["b.jsonl"] * 5
    assert {s["txt"] for s in tar_samples(out)} == {*(f"caption {i}" for i in range(9)), *(f"more {i}" for i in range(5))}
    rows = shard_rows(out)
    assert {(r["source"], r["caption"]) for r in rows} >= {("a.parquet", "caption 0"), ("b.jsonl", "more 4")}


def test_missing_pyarrow_is_one_line_naming_the_extra(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImgFetchError, match=r"needs pyarrow: pip install 'imgfetch\[dataset\]'"):
        download(server.image_urls()[:2], tmp_path / "out", output_format="webdataset", **DATASET)
    assert not (tmp_path / "out").exists()
    (tmp_path / "list.parquet").write_bytes(b"PAR1")
    assert main(["get", str(tmp_path / "list.parquet"), "-o", str(tmp_path / "o2"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("a parquet list needs pyarrow: pip install 'imgfetch[dataset]'") and "\n" not in err


def test_options_that_cannot_make_shards_are_refused_or_ignored(server, tmp_path):
    assert Options(output_format="webdataset", executor="dask").executor == "dask"  # a shard is a Dask task
    with pytest.raises(ValueError, match="per_host needs executor process"):
        Options(executor="dask", per_host=4)
    with pytest.raises(ValueError, match="caption_column: status would clash"):
        Options(caption_column="status")
    record = fetch(server.image_urls()[0], tmp_path, options=Options(output_format="webdataset", **FAST))
    assert record.ok and Path(record.abspath).is_file()  # fetch() saves one file, whatever the run's format
    for name, value in (("dedup", "exact"), ("naming", "hash"), ("subdirs", 10), ("overwrite", True)):
        with pytest.raises(ValueError, match=f"{name} applies to output_format files only"):
            Options(output_format="parquet", **{name: value})
    from imgfetch import Downloader

    with pytest.raises(ValueError, match="a Downloader saves files; for output_format webdataset use download"):
        Downloader(tmp_path / "d", options=Options(output_format="webdataset", start_method="fork"))
    assert not (tmp_path / "d").exists()


def test_the_readme_reads_shards_back_as_written(server, tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```py\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    download([*server.image_urls()[:6], server.url("/status/404")], tmp_path / "shards", output_format="webdataset",
             **DATASET)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    samples = [line for line in done.stdout.splitlines()
               if re.fullmatch(r"\d{6,} \(\d+, \d+\) http://127\.0\.0\.1:\d+/img/\S+", line)]
    assert len(samples) == 6
    assert re.search(r"^ok\s+6$", done.stdout, re.MULTILINE) and re.search(r"^failed\s+1$", done.stdout, re.MULTILINE)
    assert "HTTP 404 Not Found" in done.stdout


# --------------------------------------------------------------------------- kills and stops, with the real CLI

def cli(urls: Path, out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--workers", "2", "--threads", "8",
            "--timeout", "2", "--retries", "0", "--start-method", "forkserver", "--output-format", "webdataset",
            "--shard-size", "25", "--caption-column", "text", "-q", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def ok_records(out: Path) -> int:
    try:
        return (out / "manifest.jsonl").read_bytes().count(b'"status": "ok"')
    except FileNotFoundError:
        return 0



def assert_complete_dataset(out: Path, urls: list[str]) -> None:
    """Every URL ended ok or failed, with exactly one parquet row across the shards, and every ok record's
    sample in exactly one readable tar; nothing temporary left."""
    final = newest(out)
    assert len(final) == len(urls)
    rows = shard_rows(out)
    assert sorted(r["url"] for r in rows) == sorted(urls)
    samples = {s["__key__"]: s for s in tar_samples(out)}  # the webdataset library reads every tar to its end
    ok = [r for r in final.values() if r["status"] == "ok"]
    assert len(samples) == sum(r["status"] == "ok" for r in rows) == len(ok)
    for record in ok:
        sample = samples[record["sample"]]
        assert Path(sample["__url__"]).name == record["shard"] and sample["json"]["url"] == record["url"]
    assert_no_temporary_files(out)


def test_a_run_killed_while_shards_are_open_resumes_to_complete_readable_shards(tmp_path):
    with ImageServer(count=400, latency_ms=20, latency_spread=1.0, seed=5) as server:
        urls = server.image_urls()[:300]
        for i in range(20):  # failures all along the list, so that the open shards hold some
            urls.insert(16 * i + 5, server.url(f"/status/404?n={i}"))
        listing = caption_list(tmp_path / "list.csv", urls)
        out = tmp_path / "out"
        for kill in range(2):  # the second kill lands in a resume
            proc = cli(listing, out)
            start = ok_records(out)
            wait_for(lambda: ok_records(out) >= start + 60)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)  # reads and closes its stderr
            assert any(p.name.endswith(".tar.tmp") for p in out.glob(".imgfetch-tmp-*/*"))  # shards were open
        again = cli(listing, out)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 1, err  # the 404s
        assert_complete_dataset(out, urls)


def test_ctrl_c_puts_open_shards_in_place_and_the_rerun_completes(tmp_path):
    with ImageServer(count=200, latency_ms=60, seed=6) as server:
        urls = server.image_urls()
        listing = caption_list(tmp_path / "list.csv", urls)
        out = tmp_path / "out"
        proc = cli(listing, out)
        wait_for(lambda: ok_records(out) >= 60)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        stopped = newest(out)
        assert 60 <= len(stopped) < 200
        samples = {s["__key__"] for s in tar_samples(out)}
        assert samples == {r["sample"] for r in stopped.values()}  # exactly the recorded samples, in readable tars
        assert len(list(out.glob("*.tar"))) > sum(r["status"] == "ok" for r in stopped.values()) // 25  # partial ones too
        assert_no_temporary_files(out)
        server.stats.reset()
        again = cli(listing, out)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert server.stats.requests == 200 - len(stopped)  # nothing that was recorded is fetched again
        assert_complete_dataset(out, urls)


def test_tar_members_have_the_headers_tarfile_writes(tmp_path):
    """The shard writer packs a member's ustar header itself (tarfile's is slow): the same bytes, so any tar
    reader takes them; a name too long for one field goes through tarfile (as a prefix and a name)."""
    from imgfetch.store.shardfiles import MEMBER_MODE, TarFile, member_header

    members = [("000000001.jpg", 12345, 1_700_000_000), ("000000001.json", 0, 0), ("é" * 30 + ".txt", 8**11 - 1, 1),
               ("k" * 100, 7, 2), ("prefix/" * 10 + "n" * 40 + ".webp", 5, 3)]
    for name, size, mtime in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, MEMBER_MODE
        assert member_header(name, size, mtime) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    path = tmp_path / "00000.tar"
    tar = TarFile(str(path))
    for name, _, mtime in members[:4]:
        tar.add(name, name.encode("utf-8") * 3, mtime)
    tar.close()
    with tarfile.open(path) as read:
        assert [(m.name, read.extractfile(m).read()) for m in read] == [(n, n.encode("utf-8") * 3) for n, _, _ in members[:4]]


def test_a_dataset_worker_forked_from_its_fork_server_does_not_import_pandas_to_write_rows():
    """The fork server imports what writing rows needs (pandas too, where installed: pyarrow imports it only
    when it first converts values), so each worker it forks starts without 0.2-0.4 s of imports (pandas, numpy)."""
    code = ("import sys\nfrom imgfetch.store.shards import worker_imports\nfrom imgfetch.store.shardfiles import warm_up\n"
            "for name in worker_imports('webdataset'):\n    try:\n        __import__(name)\n    except ImportError:\n"
            "        pass\nbefore = set(sys.modules)\nwarm_up()\nprint(' '.join(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    imported = done.stdout.split()
    assert not [name for name in imported if name.split(".")[0] in ("pandas", "numpy")], imported
    assert len(imported) <= 2, imported  # (pyarrow may still import a small module of its own)
