"""Credentials from the URL and from netrc reach the server, and never follow a redirect to another host."""
from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit

import pytest

from conftest import FAST, read_manifest
from imgfetch import download, fetch

SECRET = "s3cr3t-pw"
USER = "u%40x"  # percent-encoded in the URL and in the route: the server expects "u@x"


@pytest.fixture(autouse=True)
def netrc_file(tmp_path, monkeypatch):
    """A netrc of the test's own (absent until written), so ~/.netrc never decides an outcome."""
    path = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(path))
    return path


def protected(srv, i: int = 0, host: str = "127.0.0.1", creds: str = "") -> str:
    """An image URL that answers 401 unless given u@x:SECRET, optionally with ``creds@`` in it."""
    at = f"{creds}@" if creds else ""
    name = urlsplit(srv.image_urls()[i]).path.rpartition("/")[2]  # i.jpg, i.png, ...: the format of image i
    return f"http://{at}{host}:{srv.port}/basic-auth/{USER}/{SECRET}/{name}"


def redirect_to(srv, target: str, creds: str) -> str:
    return f"http://{creds}@127.0.0.1:{srv.port}/redirect-to?url={quote(target, safe='')}"


def auth_counts(srv) -> dict:
    return srv.stats.snapshot()["by_auth"]


def test_userinfo_credentials_are_sent_and_masked(fresh_server, tmp_path):
    r = fetch(protected(fresh_server, creds=f"{USER}:{SECRET}"), tmp_path / "out", **FAST)
    assert (r.status, r.error) == ("ok", None)
    assert (tmp_path / "out" / r.path).read_bytes() == fresh_server.image_bytes(0)
    assert auth_counts(fresh_server) == {"right": 1}
    assert r.url == r.final_url == protected(fresh_server, creds=f"{USER}:***")  # the password never shows


def test_wrong_credentials_fail_with_401(fresh_server, tmp_path):
    r = fetch(protected(fresh_server, creds=f"{USER}:nope"), tmp_path / "out", **FAST)
    assert (r.status, r.error, r.error_kind, r.http_status) == ("failed", "HTTP 401 Unauthorized", "http", 401)
    assert auth_counts(fresh_server) == {"wrong": 1}


def test_netrc_credentials_are_sent(fresh_server, tmp_path, netrc_file):
    netrc_file.write_text(f"machine 127.0.0.1 login u@x password {SECRET}\n")
    r = fetch(protected(fresh_server), tmp_path / "out", **FAST)
    assert (r.status, r.error) == ("ok", None)
    assert auth_counts(fresh_server) == {"right": 1}


def test_given_credentials_win_over_netrc(fresh_server, tmp_path, netrc_file):
    netrc_file.write_text("machine 127.0.0.1 login u@x password stale\n")
    basic = "Basic " + base64.b64encode(f"u@x:{SECRET}".encode()).decode()
    in_url = fetch(protected(fresh_server, 0, creds=f"{USER}:{SECRET}"), tmp_path / "out", **FAST)
    in_header = fetch(protected(fresh_server, 1), tmp_path / "out", headers=[f"Authorization: {basic}"], **FAST)
    neither = fetch(protected(fresh_server, 2), tmp_path / "out", **FAST)
    assert (in_url.status, in_header.status, neither.error) == ("ok", "ok", "HTTP 401 Unauthorized")
    assert auth_counts(fresh_server) == {"right": 2, "wrong": 1}  # netrc's stale password: only where none was given


def test_credentials_follow_a_redirect_only_on_the_same_host(fresh_server, tmp_path):
    same = fetch(redirect_to(fresh_server, protected(fresh_server, 0), f"{USER}:{SECRET}"), tmp_path / "out", **FAST)
    target = protected(fresh_server, 1, host="localhost")  # the same server under another host name
    other = fetch(redirect_to(fresh_server, target, f"{USER}:{SECRET}"), tmp_path / "out", **FAST)
    assert same.status == "ok"
    assert (other.status, other.error, other.final_url) == ("failed", "HTTP 401 Unauthorized", target)
    assert auth_counts(fresh_server) == {"right": 1, "none": 1}  # no Authorization header reached localhost


def test_netrc_of_the_new_host_is_used_after_a_redirect(fresh_server, tmp_path, netrc_file):
    netrc_file.write_text(f"machine localhost login u@x password {SECRET}\n")
    target = protected(fresh_server, host="localhost")
    r = fetch(redirect_to(fresh_server, target, f"{USER}:wrong"), tmp_path / "out", **FAST)
    assert r.status == "ok" and auth_counts(fresh_server) == {"right": 1}


def test_pool_workers_send_url_credentials_only_to_their_host(fresh_server, tmp_path):
    # Fork only: the credentials travel in the task's URL, the same under each start method (a spawned
    # worker reading its own environment: test_pool_workers_read_netrc).
    srv = fresh_server
    urls = [protected(srv, 0, creds=f"{USER}:{SECRET}"),
            protected(srv, 1, creds=f"{USER}:badpw"),
            redirect_to(srv, protected(srv, 2), f"{USER}:{SECRET}"),                    # same host: carried
            redirect_to(srv, protected(srv, 3, host="localhost"), f"{USER}:{SECRET}")]  # another host: dropped
    out = tmp_path / "out"
    results = download(urls, out, workers=1, threads=2, start_method="fork", **FAST)
    assert [(r.status, r.error) for r in results] == [
        ("ok", None), ("failed", "HTTP 401 Unauthorized"), ("ok", None), ("failed", "HTTP 401 Unauthorized")]
    assert auth_counts(srv) == {"right": 2, "wrong": 1, "none": 1}
    records = sorted(read_manifest(out / "manifest.jsonl"), key=lambda record: record["line"])
    assert records[0]["url"] == records[0]["final_url"] == protected(srv, 0, creds=f"{USER}:***")


# Not forkserver: its server process keeps the environment it started with (an earlier test's,
# without this $NETRC), and forks every worker from it. A run started with $NETRC set is fine.
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pool_workers_read_netrc(fresh_server, tmp_path, netrc_file, start_method):
    netrc_file.write_text(f"machine localhost login u@x password {SECRET}\n")
    srv = fresh_server
    urls = [protected(srv, 0, host="localhost"),                                        # netrc
            redirect_to(srv, protected(srv, 1, host="localhost"), f"{USER}:badpw"),     # the new host's netrc
            redirect_to(srv, protected(srv, 2, host="localhost", creds=f"{USER}:badpw"), f"{USER}:{SECRET}")]
    results = download(urls, tmp_path / "out", workers=1, threads=2, start_method=start_method, **FAST)
    assert [(r.status, r.error) for r in results] == [
        ("ok", None), ("ok", None), ("failed", "HTTP 401 Unauthorized")]  # a Location's own userinfo wins
    assert auth_counts(srv) == {"right": 2, "wrong": 1}
    assert results[2].final_url == protected(srv, 2, host="localhost", creds=f"{USER}:***")
