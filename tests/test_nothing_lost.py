"""Nothing lost: a hard kill, an errors file or a manifest that points at the list, a shared manifest."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import assert_clean, read_manifest, tree
from imgfetch.cli import main
from imgfetch.server import ImageServer

FAST_ARGS = ["--timeout", "0.5", "--retries", "0", "--start-method", "fork", "-q"]


def write_list(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(u + "\n" for u in urls))
    return path


def run_cli(urls: Path, out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--workers", "2", "--threads", "16",
            "--timeout", "2", "--retries", "0", "--start-method", "forkserver", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def records_in(out: Path, status: bytes = b'"status": "ok"') -> int:
    """Manifest lines with this status (a re-run writes a skipped record for each done URL first)."""
    try:
        return sum(status in line for line in (out / "manifest.jsonl").read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def unrecorded(out: Path) -> set[str]:
    """Images in OUT that no ok record names."""
    files = {p for p in tree(out) if p.endswith(".jpg")}
    lines = (out / "manifest.jsonl").read_bytes().splitlines() if (out / "manifest.jsonl").exists() else []
    recorded = set()
    for line in lines:
        try:
            recorded.add(json.loads(line).get("path"))
        except ValueError:
            pass
    return files - recorded


def test_after_a_hard_kill_one_rerun_completes_every_url_without_overwrite(tmp_path):
    """SIGKILL of the whole process group (OOM killer, container stop) mid-run, against a server that
    returns different bytes on every request: the re-run finishes every URL and leaves no stray file."""
    with ImageServer(count=1600, latency_ms=30, latency_spread=1.0, seed=5) as server:
        urls = write_list(tmp_path / "urls.txt", [server.url(f"/varying/{i}.jpg") for i in range(0, 1600, 4)])
        out = tmp_path / "out"
        orphans = 0
        for _kill in range(3):  # several kills: each may leave images saved a moment before their record
            proc = run_cli(urls, out, "--threads", "64")
            start = records_in(out)
            deadline = time.monotonic() + 30
            while records_in(out) < start + 80 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)  # reads and closes its stderr
            orphans = max(orphans, len(unrecorded(out)))
        print(f"images without a record after a SIGKILL: {orphans}")
        again = run_cli(urls, out)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert "already there" not in err
        final = {r["key"]: r for r in read_manifest(out / "manifest.jsonl")}
        assert len(final) == 400 and {r["status"] for r in final.values()} <= {"ok", "skipped"}
        assert unrecorded(out) == set()
        assert_clean(out, list(final.values()))


def test_errors_file_that_is_the_list_is_refused_and_the_list_kept(server, tmp_path, capsys):
    urls = write_list(tmp_path / "failed.txt", [server.url("/status/404"), *server.image_urls()[:3]])
    before = urls.read_bytes()
    assert main(["get", str(urls), "-o", str(tmp_path / "out"), "--errors", str(urls), *FAST_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"imgfetch: error: --errors {urls} is the URL list being read") and "\n" not in err
    assert urls.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_manifest_that_is_the_list_is_refused_and_the_list_kept(server, tmp_path, capsys):
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:3])
    before = urls.read_bytes()
    assert main(["get", str(urls), "-o", str(tmp_path / "out"), "--manifest", str(urls), *FAST_ARGS]) == 2
    assert capsys.readouterr().err.startswith(f"imgfetch: error: --manifest {urls} is the URL list being read")
    assert urls.read_bytes() == before


def test_errors_file_is_only_replaced_when_the_run_ends(tmp_path):
    """An existing file named by --errors is untouched while the run reads its list; a kill leaves it as it was."""
    with ImageServer(count=400, latency_ms=200, seed=1) as server:
        urls = write_list(tmp_path / "urls.txt", server.image_urls())
        errors = tmp_path / "notes.txt"
        errors.write_text("my own notes\n")
        out = tmp_path / "out"
        proc = run_cli(urls, out, "--errors", str(errors), "--threads", "2")
        deadline = time.monotonic() + 20
        while records_in(out, b"") < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)  # reads and closes its stderr
        assert errors.read_text() == "my own notes\n"


def test_replacing_a_file_imgfetch_did_not_write_is_announced(server, tmp_path, capsys):
    urls = write_list(tmp_path / "urls.txt", [server.url("/status/404"), server.image_urls()[0]])
    errors = tmp_path / "notes.txt"
    errors.write_text("my own notes\n")
    argv = ["get", str(urls), "-o", str(tmp_path / "out"), "--errors", str(errors), *FAST_ARGS[:-1]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--errors {errors}: that file exists and imgfetch did not write it; it is replaced when the run ends" in err
    assert errors.read_text().splitlines()[1:] == [server.url("/status/404")]
    assert main(argv) == 1  # now it is ours: replaced without a word
    assert "did not write it" not in capsys.readouterr().err


def test_a_shared_manifest_is_held_by_one_run_at_a_time(tmp_path, capsys):
    with ImageServer(count=40, latency_ms=300, seed=2) as server:
        urls = write_list(tmp_path / "urls.txt", server.image_urls())
        shared = tmp_path / "shared.jsonl"
        first = run_cli(urls, tmp_path / "a", "--manifest", str(shared), "--threads", "1")
        try:
            deadline = time.monotonic() + 20
            while not shared.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            assert main(["get", str(urls), "-o", str(tmp_path / "b"), "--manifest", str(shared), *FAST_ARGS]) == 2
            assert capsys.readouterr().err.strip() == (
                f"imgfetch: error: {shared}: another imgfetch run is using this manifest")
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=30)
        assert not (tmp_path / "b").exists() or tree(tmp_path / "b") == set()


def test_a_compaction_killed_midway_leaves_nothing_after_the_next_run(server, tmp_path):
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:3])
    out = tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), *FAST_ARGS]) == 0
    (out / ".manifest.jsonl.4242.compact").write_text('{"half": "a compaction"}\n')  # SIGTERM mid-compaction
    assert main(["get", str(urls), "-o", str(out), *FAST_ARGS]) == 0
    assert_clean(out, read_manifest(out / "manifest.jsonl"))


def test_a_relative_output_folder_keeps_its_own_temporary_folder(server, tmp_path, monkeypatch):
    """From Python 3.12 on, mkdtemp names the run's temporary folder by an absolute path even in a
    relative output folder; the run once took it for a killed run's leftover, removed it, and saved nothing."""
    monkeypatch.chdir(tmp_path)
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *args, **kwargs: os.path.abspath(mkdtemp(*args, **kwargs)))
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:4])
    assert main(["get", str(urls), "-o", "out", *FAST_ARGS[:4], "--start-method", "forkserver", "-q"]) == 0
    assert [r["status"] for r in read_manifest(tmp_path / "out" / "manifest.jsonl")] == ["ok"] * 4
