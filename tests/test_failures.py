"""Failures decided by exception type, with an error_kind, never by the text of the URL."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import FAST, read_manifest
from imgfetch import ErrorKind, download, fetch
from tlsserver import TLSServer

DATA = Path(__file__).parent / "data"
README = Path(__file__).resolve().parents[1] / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawServer:
    """Answers every connection with the same raw bytes, then closes (loopback, bounded)."""

    def __init__(self, answer: bytes, connections: int = 20) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # a closed listener does not wake accept(): it looks at `done` this often
        self.port = self.listener.getsockname()[1]
        self.answer = answer
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(connections,), daemon=True)

    def _serve(self, connections: int) -> None:
        served = 0
        while served < connections and not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            served += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def __enter__(self) -> "RawServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()


def test_a_refused_connection_is_a_connection_failure_whatever_the_path_says(tmp_path):
    port = free_port()
    result = fetch(f"http://127.0.0.1:{port}/certificate.jpg", tmp_path, **{**FAST, "retries": 2})
    assert (result.error, result.error_kind, result.attempts) == ("connection refused", "connection", 3)


def test_a_404_on_a_path_named_timeout_is_an_http_failure(server, tmp_path):
    result = fetch(server.url("/status/404?name=/timeout.png"), tmp_path, **FAST)
    assert (result.error, result.error_kind, result.attempts) == ("HTTP 404 Not Found", "http", 1)


def test_conflicting_content_lengths_are_a_protocol_error_not_retried(tmp_path):
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789"
    with RawServer(answer) as raw:
        result = fetch(f"http://127.0.0.1:{raw.port}/a.jpg", tmp_path, **{**FAST, "retries": 3})
    assert result.error_kind == "protocol" and result.attempts == 1
    assert result.error.startswith("malformed HTTP answer")
    assert result.error.count("(") == result.error.count(")")


def test_a_self_signed_certificate_is_a_tls_failure_in_one_readable_line(server, tmp_path):
    with TLSServer(server.image_bytes(0)) as tls:
        result = fetch(tls.base + "/a.jpg", tmp_path, **{**FAST, "retries": 3})
        assert (result.error_kind, result.attempts) == ("tls", 1)
        assert result.error == "TLS error: certificate verify failed: self-signed certificate"
        trusted = fetch(tls.base + "/a.jpg", tmp_path, ca_bundle=str(DATA / "selfsigned.pem"), **FAST)
        assert trusted.status == "ok"


def test_insecure_warns_once_for_the_whole_run(server, tmp_path):
    with TLSServer(server.image_bytes(0)) as tls:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{tls.base}/{i}.jpg\n" for i in range(20)))
        proc = subprocess.run([sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(tmp_path / "o"),
                               "--insecure", "--workers", "2", "--threads", "4", "--timeout", "2"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line and "insecure" in line.lower()]
    assert warnings == ["imgfetch: warning: --insecure: TLS certificates are not checked for any URL of this run"]


def test_every_failed_record_in_the_manifest_has_a_documented_kind(server, tmp_path):
    urls = [server.url("/status/404"), server.url("/reset"), server.url("/html-as-jpeg"), server.url("/redirect-loop"),
            server.url("/corrupt.jpg"), server.url("/bomb.png"), "ftp://example.com/x.jpg", server.image_urls()[0]]
    download(urls, tmp_path / "o", workers=1, threads=4, start_method="fork", **FAST)
    kinds = {r["line"]: r["error_kind"] for r in read_manifest(tmp_path / "o" / "manifest.jsonl")}
    assert kinds == {1: "http", 2: "connection", 3: "not_image", 4: "redirect", 5: "corrupt", 6: "too_large",
                     7: "invalid", 8: None}
    assert set(kinds.values()) - {None} <= set(ErrorKind)
    assert {kind: ErrorKind(kind).permanent for kind in kinds.values() if kind not in (None, "http")} == {
        "connection": False, "not_image": True, "redirect": True, "corrupt": True, "too_large": True, "invalid": True}


def test_the_readme_tables_every_error_kind_as_declared():
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- error kinds: ")[1].split("<!-- end of error kinds -->")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()[3:] if line.strip()]
    retried = {True: "no", False: "yes"}
    assert rows == [[f"`{kind.value}`", kind.meaning, "for 408, 429 and 5xx" if kind == "http" else retried[kind.permanent]]
                    for kind in ErrorKind], "README.md's error kinds differ from imgfetch.ErrorKind (records.py)"


def test_error_kinds_are_the_strings_manifests_hold(tmp_path):
    """Manifests written by earlier versions stay readable: each kind is its value, in JSON and in text."""
    assert [kind.value for kind in ErrorKind] == [
        "http", "timeout", "connection", "dns", "tls", "proxy", "protocol", "redirect", "too_large", "empty",
        "not_image", "corrupt", "format", "filtered", "disallowed", "disk", "disk_full", "crashed", "invalid",
        "internal"]
    assert json.dumps({"error_kind": ErrorKind.DISK_FULL}) == '{"error_kind": "disk_full"}'
    assert f"{ErrorKind.DNS}" == str(ErrorKind.DNS) == "dns" and ErrorKind.DNS == "dns"
    assert {"dns": 1}[ErrorKind.DNS] == 1  # a kind read back from a manifest and one made here count together


def _boom(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("a bug")


@pytest.mark.parametrize("flags, shown", [((), False), (("--traceback",), True), (("-vv",), True)])
def test_a_bug_in_a_worker_shows_its_stack_only_when_asked(server, tmp_path, flags, shown):
    """A bug inside a worker is one warning line; --traceback or -vv adds the worker's stack."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, imgfetch.engine.pipeline as w\n"
        "from imgfetch.cli import main\n"
        "def boom(*a, **k):\n    raise ZeroDivisionError('a bug')\n"
        "w.shape = boom\n"
        "if __name__ == '__main__':\n    sys.exit(main(sys.argv[1:]))\n")
    urls = tmp_path / "urls.txt"
    urls.write_text(server.image_urls()[0] + "\n")
    proc = subprocess.run([sys.executable, str(script), "get", str(urls), "-o", str(tmp_path / "o"),
                           "--start-method", "fork", "--workers", "1", *flags],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "imgfetch: warning: internal error on " in proc.stderr and "ZeroDivisionError: a bug" in proc.stderr
    assert ("Traceback (most recent call last)" in proc.stderr) == shown
    record = json.loads((tmp_path / "o" / "manifest.jsonl").read_text())
    assert record["error_kind"] == "internal"


def test_a_socks_proxy_without_pysocks_is_refused_up_front_with_the_install_hint(monkeypatch):
    import types

    from imgfetch import Options

    monkeypatch.setitem(sys.modules, "socks", None)
    with pytest.raises(ValueError, match=r"needs PySocks: pip install 'imgfetch\[socks\]'"):
        Options(proxy="socks5://127.0.0.1:1080")
    monkeypatch.setitem(sys.modules, "socks", types.ModuleType("socks"))
    assert Options(proxy="socks5h://127.0.0.1:1080").proxy == "socks5h://127.0.0.1:1080"


def test_no_proxy_cidr_blocks_bypass_the_proxy(monkeypatch):
    from imgfetch.net.fetcher import ProxyConfig

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,.internal.example.com")
    config = ProxyConfig(None)
    assert config.lookup("http", "10.1.2.3:8080") is None
    assert config.lookup("http", "img.internal.example.com") is None
    assert config.lookup("http", "11.1.2.3") == {"http": "http://127.0.0.1:3128"}


def test_the_summary_groups_a_failure_whether_retries_or_the_budget_ran_out_first():
    from imgfetch.report.summary import failure_reason

    assert failure_reason("failed", "connection reset by the server") == failure_reason(
        "failed", "connection reset by the server; gave up after 3 attempts: no time left in --max-time 5 s")
