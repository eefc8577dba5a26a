"""imgfetch get with URLs as arguments, list URLs piped in, empty lists, and errors that say "error" once."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import assert_clean, read_manifest, tree
from imgfetch.cli import main
from imgfetch.server import ImageServer

FAST_ARGS = ["--timeout", "0.5", "--deadline", "2", "--retries", "0", "--start-method", "fork"]


def test_one_url_as_the_argument_is_downloaded_with_a_manifest_and_a_summary(server, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["get", server.image_urls()[0], "-o", str(out)]) == 0  # the whole command, nothing else
    assert "done: ok 1, failed 0" in capsys.readouterr().err
    [record] = read_manifest(out / "manifest.jsonl")
    assert (record["status"], record["line"], record["url"]) == ("ok", 1, server.image_urls()[0])
    assert (out / record["path"]).read_bytes() == server.image_bytes(0)
    assert_clean(out, [record])


def test_two_urls_even_one_after_the_options_and_a_failure_exits_1(server, tmp_path, capsys):
    out = tmp_path / "out"
    first, missing, last = server.image_urls()[1], server.url("/status/404"), server.image_urls()[2]
    assert main(["get", first, missing, "-o", str(out), *FAST_ARGS, last]) == 1
    err = capsys.readouterr().err
    assert "done: ok 2, failed 1" in err and "1 × HTTP 404 Not Found" in err
    records = sorted(read_manifest(out / "manifest.jsonl"), key=lambda r: r["line"])
    assert [(r["line"], r["status"]) for r in records] == [(1, "ok"), (2, "failed"), (3, "ok")]
    assert main(["get", first, missing, "-o", str(out), *FAST_ARGS, last, "-q"]) == 1  # run again: resumes
    from imgfetch import read_manifest as newest_per_url

    final = sorted(newest_per_url(out), key=lambda r: r["line"])  # the 404 is permanent: not fetched again
    assert [(r["status"], r["skipped"]) for r in final] == [("ok", True), ("failed", False), ("ok", True)]


def test_a_url_without_an_output_folder_or_beside_a_list_is_one_line(server, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "urls.txt").write_text(server.image_urls()[0] + "\n")
    assert main(["get", server.image_urls()[0]]) == 2
    assert capsys.readouterr().err == ("imgfetch get: error: the following arguments are required: -o/--out "
                                       "(see: imgfetch get --help)\n")
    assert main(["get", "urls.txt", server.image_urls()[1], "-o", "out"]) == 2
    assert capsys.readouterr().err == (f"imgfetch: error: give one URL list or image URLs, not both: urls.txt is a "
                                       f"list and {server.image_urls()[1]} a URL; put the URLs in the list\n")
    assert main(["get", "urls.txt", "-o", "out", "more.txt"]) == 2
    assert "and more.txt would be a second; for several, pipe them in: cat LIST1 LIST2 |" in capsys.readouterr().err
    assert tree(tmp_path) == {"urls.txt"}


def test_a_list_piped_in_as_dash_is_downloaded(server, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("\n".join(server.image_urls()[:3]) + "\n").encode())))
    assert main(["get", "-", "-o", str(tmp_path / "o"), "-q", *FAST_ARGS]) == 0
    assert len(read_manifest(tmp_path / "o" / "manifest.jsonl")) == 3


def test_a_list_url_gets_advice_that_works_when_run(fresh_server, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["get", fresh_server.url("/urls.txt"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    command = err.split("pipe it in: ", 1)[1]
    assert command == f"curl -fsSL {fresh_server.url('/urls.txt')} | imgfetch get - -o {out}"
    assert not out.exists()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"done: ok {fresh_server.count}, failed 0" in done.stderr


def test_a_csv_list_url_is_piped_in_as_csv(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["get", "https://example.com/photos.csv.gz?sig=1", "-o", "out"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "pipe it in: curl -fsSL 'https://example.com/photos.csv.gz?sig=1' | imgfetch get - --input-format csv -o out")


def test_a_list_or_url_without_the_command_suggests_get(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv, suggestion in ((["urls.txt", "-o", "my out"], "imgfetch get urls.txt -o 'my out'"),
                             (["https://example.com/cat.jpg", "-o", "x"], "imgfetch get https://example.com/cat.jpg -o x")):
        assert main(argv) == 2
        assert capsys.readouterr().err == (f"imgfetch: error: argument COMMAND: invalid choice: {argv[0]!r} (choose "
                                           f"from 'get', 'bench', 'serve'); did you mean: {suggestion}\n")


def test_an_empty_list_says_it_had_no_urls_and_exits_0(server, tmp_path, capsys, monkeypatch):
    empty, comments = tmp_path / "empty.txt", tmp_path / "comments.txt"
    empty.write_text("")
    comments.write_text("# nothing yet\n\n   \n")
    for source in (empty, comments):
        assert main(["get", str(source), "-o", str(tmp_path / "out"), *FAST_ARGS]) == 0
        assert capsys.readouterr().err.endswith(f"the list had no URLs: {source} is empty or has only blank lines "
                                                "and '#' comments\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["get", "-", "-o", str(tmp_path / "out"), *FAST_ARGS]) == 0
    assert capsys.readouterr().err.endswith("the list had no URLs: standard input is empty or has only blank "
                                            "lines and '#' comments\n")
    header_only = tmp_path / "photos.csv"
    header_only.write_text("id,url\n")
    assert main(["get", str(header_only), "-o", str(tmp_path / "out"), *FAST_ARGS, "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q: errors only
    assert main(["get", str(header_only), "-o", str(tmp_path / "out"), *FAST_ARGS]) == 0
    assert capsys.readouterr().err.endswith(f"{header_only} is empty or has only a header\n")


def test_a_busy_port_says_error_once(server, capsys):
    assert main(["serve", "--port", str(server.port)]) == 2
    assert capsys.readouterr().err == (f"imgfetch: error: cannot listen on 127.0.0.1:{server.port}: Address already "
                                       "in use; give another --port, or --port 0 for a free one\n")
    with ImageServer(count=1) as other, pytest.raises(OSError) as raised:  # the library says it in the same words
        ImageServer(port=other.port, count=1).start()
    assert str(raised.value).endswith(f"cannot listen on 127.0.0.1:{other.port}: Address already in use")


def test_a_message_that_says_imgfetch_error_itself_is_not_prefixed_again(server, tmp_path):
    urls = tmp_path / "u.txt"
    urls.write_text("\n".join(server.image_urls()[:3]) + "\n")
    script = tmp_path / "top.py"  # calls the CLI at its top level: the main guard stops the benchmark's pool
    script.write_text(textwrap.dedent("""\
        from imgfetch.cli import main
        raise SystemExit(main(["bench", "u.txt", "--workers", "1", "--threads", "1", "--seconds", "0.1", "--limit", "3"]))
        """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"imgfetch: error: {script}:2 calls imgfetch outside"), done.stderr


def test_get_help_has_one_output_heading_and_a_url_example(capsys):
    assert main(["get", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines.count("output:") == 1 and "what it prints:" in lines
    assert any(line.strip().startswith("imgfetch get https://") for line in lines)
