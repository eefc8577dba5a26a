"""The command line: exit codes, one-line errors, the summary, -v and --errors."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from conftest import assert_clean, read_manifest, tree
from imgfetch.cli import main

FAST_ARGS = ["--timeout", "0.5", "--deadline", "2", "--retries", "0", "--start-method", "fork"]


def write_list(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_get_all_ok_exits_0_with_summary(server, tmp_path, capsys):
    urls = write_list(tmp_path / "urls.txt", ["# a comment", "", *server.image_urls()[:10]])
    out = tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), "--workers", "2", "--threads", "2", *FAST_ARGS]) == 0
    err = capsys.readouterr().err
    assert "ok 10, failed 0, invalid 0, duplicate 0;" in err
    records = read_manifest(out / "manifest.jsonl")
    assert [r["line"] for r in sorted(records, key=lambda r: r["line"])] == list(range(3, 13))
    assert_clean(out, records)


def test_some_failed_exits_1_and_errors_file_lists_them(server, tmp_path, capsys):
    from urllib.parse import urlsplit

    parts = urlsplit(server.url("/status/404"))
    bad = parts._replace(netloc="user:secret@" + parts.netloc).geturl()  # credentials on the loopback URL
    urls = write_list(tmp_path / "urls.txt", [server.image_urls()[0], bad, "not a url"])
    errors = tmp_path / "failed.txt"
    out = tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), "--errors", str(errors), *FAST_ARGS]) == 1
    mark, *listed = errors.read_text().splitlines()
    assert mark.startswith("# imgfetch --errors:") and listed == [bad]  # in full, ready to feed back in
    assert stat.S_IMODE(os.stat(errors).st_mode) == 0o600
    manifest = (out / "manifest.jsonl").read_text()
    assert "secret" not in manifest and "user:***@" in manifest
    assert "secret" not in capsys.readouterr().err


def test_verbose_logs_the_pid_line(server, tmp_path, capsys):
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:3])
    assert main(["get", str(urls), "-o", str(tmp_path / "o"), "-v", *FAST_ARGS]) == 0
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("[Process ID]:")]
    assert len(lines) == 3
    pids = {int(l.split(":")[1].split()[0]) for l in lines}
    assert os.getpid() not in pids
    assert {l.split("Downloading ")[1] for l in lines} == set(server.image_urls()[:3])


@pytest.mark.parametrize("argv, needle", [
    (["--workers", "0"], "--workers must be a whole number >= 1"),
    (["--threads", "-1"], "--threads must be a whole number >= 1"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--max-bytes", "lots"], "--max-bytes"),
    (["--start-method", "thread"], "--start-method"),
    (["--formats", "jpeg,psd"], "--formats: unknown format PSD"),
    (["--insecure", "--ca-bundle", "/etc/hostname"], "--insecure and --ca-bundle"),
    (["--naming", "column:id"], "--naming column:id needs --keep-columns id"),
])
def test_bad_options_exit_2_with_one_line(server, tmp_path, capsys, argv, needle):
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:1])
    out = tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), "-q", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_list_and_unwritable_output_exit_2(server, tmp_path, capsys):
    assert main(["get", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.txt" in err and len(err.splitlines()) == 1
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:1])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["get", str(urls), "-o", str(blocker / "out"), "-q"]) == 2  # ENOTDIR, even as root
    err = capsys.readouterr().err.strip()
    assert "cannot use output folder" in err and len(err.splitlines()) == 1
    assert tree(tmp_path) == {"urls.txt", "file"}


def test_binary_list_exits_2(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(bytes(range(256)) * 10)
    assert main(["get", str(junk), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "junk.txt" in capsys.readouterr().err


def test_console_script_and_module_entry_point(server, tmp_path):
    urls = write_list(tmp_path / "urls.txt", server.image_urls()[:4])
    exe = os.path.join(os.path.dirname(sys.executable), "imgfetch")
    done = subprocess.run([exe, "get", str(urls), "-o", str(tmp_path / "a"), *FAST_ARGS],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ok 4," in done.stderr
    version = subprocess.run([sys.executable, "-m", "imgfetch", "--version"], capture_output=True, text=True,
                             timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("imgfetch ")


def test_csv_list_with_kept_columns_and_column_naming(server, tmp_path):
    rows = ["id,url,caption"] + [f"pic{i},{u},a caption" for i, u in enumerate(server.image_urls()[:3])]
    urls = write_list(tmp_path / "list.csv", rows)
    out = tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), "--keep-columns", "id,caption", "--naming", "column:id",
                 *FAST_ARGS]) == 0
    records = sorted(read_manifest(out / "manifest.jsonl"), key=lambda r: r["line"])
    assert [r["id"] for r in records] == ["pic0", "pic1", "pic2"]
    assert all(r["path"].startswith(r["id"] + "-") for r in records)
