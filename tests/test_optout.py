"""X-Robots-Tag opt-outs and the User-Agent token: the parsing in-process, the decision through real workers."""
from __future__ import annotations

import pytest

from conftest import FAST, read_manifest
from imgfetch import download
from imgfetch.net.optout import opted_out, our_tokens, user_agent
from imgfetch.options import Options

DEFAULT = Options().disallowed_header_directives
US = frozenset({"imgfetch", "mybot"})


@pytest.mark.parametrize("values, refused", [
    (["noai"], "noai"),
    (["NoImageAI"], "noimageai"),
    (["nofollow, noindex"], "noindex"),
    (["noimageindex", "noai"], "noimageindex"),
    (["mybot: noai"], "mybot: noai"),
    (["otherbot: noai"], None),
    (["otherbot: noai", "mybot: noindex"], "mybot: noindex"),
    (["otherbot: noindex, nofollow", "noai"], "noai"),  # a separate header is for every robot again
    (["otherbot: nofollow, mybot: noimageai"], "mybot: noimageai"),
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], None),  # a directive with a value, not a robot
    (["max-image-preview: none, noai"], "noai"),
    (["nofollow", "noarchive"], None),
    ([], None),
])
def test_directives_that_apply_to_us(values, refused):
    assert opted_out(values, DEFAULT, US) == refused


def test_no_directives_means_no_opt_outs():
    assert opted_out(["noai"], (), US) is None
    assert Options(disallowed_header_directives="none").disallowed_header_directives == ()
    assert Options(disallowed_header_directives="").disallowed_header_directives == ()
    assert Options(disallowed_header_directives="noai").disallowed_header_directives == ("noai",)


def test_the_user_agent_names_the_token_and_its_url():
    assert user_agent(Options()) == "imgfetch"
    assert user_agent(Options(user_agent_token="mybot")) == "imgfetch (compatible; mybot)"
    opts = Options(user_agent="imgfetch/2", user_agent_token="mybot", user_agent_url="https://example.com/bot")
    assert user_agent(opts) == "imgfetch/2 (compatible; mybot; +https://example.com/bot)"
    assert our_tokens(opts) == {"imgfetch", "mybot"}
    for bad in ({"user_agent_token": "my bot"}, {"user_agent_token": "a;b"},
                {"user_agent_url": "https://example.com/bot"},
                {"user_agent_token": "mybot", "user_agent_url": "ftp://example.com"}):
        with pytest.raises(ValueError, match="user_agent_(token|url)"):
            Options(**bad)


def robots(server, value: str, i: int = 0) -> str:
    return server.url(f"/headers/{i}.jpg?x-robots-tag={value}")


def test_opted_out_images_are_refused_before_their_body(server, tmp_path):
    out = tmp_path / "out"
    urls = [robots(server, "noai", 0), robots(server, "otherbot:%20noai", 4), robots(server, "nofollow", 8),
            robots(server, "imgfetch:%20noimageindex", 12), robots(server, "mybot:%20noindex", 16),
            robots(server, "otherbot:%20nofollow|noimageai", 20)]
    # --max-bytes below every image: had the body been read, these would be "too large"
    results = download(urls, out, workers=1, threads=4, max_bytes=100, **FAST)
    by_line = {r.line: r for r in results}
    assert by_line[1].error == "disallowed by X-Robots-Tag: noai" and by_line[1].error_kind == "disallowed"
    assert by_line[4].error == "disallowed by X-Robots-Tag: imgfetch: noimageindex"
    assert by_line[6].error == "disallowed by X-Robots-Tag: noimageai"
    for line in (2, 3, 5):  # another robot's opt-out, or no opt-out: fetched (and too large here)
        assert by_line[line].error_kind == "too_large"
    assert not list(out.glob("*.jpg"))
    summary = results.summary()
    assert "disallowed by X-Robots-Tag: noai" in summary


def test_the_decision_needs_only_the_headers(server, tmp_path):
    slow = server.url("/drip/0.jpg?interval=1&x-robots-tag=noai")  # the body: one byte a second
    opts = {**FAST, "timeout": 0.5, "max_time": 5.0, "deadline": None, "retries": 0}
    refused = download([slow], tmp_path / "a", workers=1, threads=1, **opts)[0]
    assert refused.error_kind == "disallowed" and refused.elapsed_s < 0.5
    read = download([slow], tmp_path / "b", workers=1, threads=1, disallowed_header_directives="none", **opts)[0]
    assert read.error_kind == "timeout"  # had the body been read, the opt-out would have waited for it


def test_a_token_makes_its_opt_outs_apply_and_is_sent(fresh_server, tmp_path):
    urls = [robots(fresh_server, "mybot:%20noai", 0), robots(fresh_server, "otherbot:%20noai", 4)]
    results = download(urls, tmp_path / "out", workers=1, threads=2, user_agent_token="mybot",
                       user_agent_url="https://example.com/bot", **FAST)
    assert [r.error_kind for r in results] == ["disallowed", None] and results[1].ok
    agents = fresh_server.stats.snapshot()["by_agent"]
    assert agents == {"imgfetch (compatible; mybot; +https://example.com/bot)": 2}


def test_opt_outs_can_be_ignored_and_are_not_retried_by_a_rerun(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = [robots(fresh_server, "noai", 0), fresh_server.url("/img/1.png")]
    first = download(urls, out, workers=1, threads=2, **FAST)
    assert [r.status for r in first] == ["failed", "ok"]
    fresh_server.stats.reset()
    again = download(urls, out, workers=1, threads=2, **FAST)
    assert again[0].skipped and again[0].error_kind == "disallowed"
    assert fresh_server.stats.snapshot()["requests"] == 0
    ignored = download(urls, out, workers=1, threads=2, retry_failed="all", disallowed_header_directives="none",
                       **FAST)
    assert [r.status for r in ignored] == ["ok", "ok"]
    assert read_manifest(out / "manifest.jsonl")[-2]["status"] == "ok"
