"""imgfetch.urls: normalising a URL to the form that is fetched and keyed, its key, and masking its secrets."""
from __future__ import annotations

import hashlib
import json
import logging

import pytest

from imgfetch import download, fetch
from imgfetch.errors import InvalidURL
from imgfetch.urls import SECRET_PARAMS, mask_url, normalize_url, url_key


@pytest.mark.parametrize("raw, expected", [
    ("http://bücher.example/ä b.jpg", "http://xn--bcher-kva.example/%C3%A4%20b.jpg"),
    ("HTTP://Example.COM/Path/A.JPG", "http://example.com/Path/A.JPG"),
    ("  https://example.org  ", "https://example.org/"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com/a#frag", "http://example.com/a"),
    ("http://example.com/a?q=1 2&b=ü#f", "http://example.com/a?q=1%202&b=%C3%BC"),
    ("http://example.com/a%20b%2fc", "http://example.com/a%20b%2Fc"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/a\\b", "http://example.com/a%5Cb"),
    ("http://example.com/a\x00b\tc", "http://example.com/a%00b%09c"),
    ("http://example.com/!$&'()*+,;=:@~-._", "http://example.com/!$&'()*+,;=:@~-._"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://user:p%40ss@example.com/", "http://user:p%40ss@example.com/"),
    ("http://user:pa ss@Example.com/", "http://user:pa%20ss@example.com/"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/"),
    ("http://192.0.2.1/x", "http://192.0.2.1/x"),
    ("http://example.com?x", "http://example.com/?x"),
    ("https://ÉXAMPLE.test/", "https://xn--xample-9ua.test/"),
    ("http://faß.de/", "http://xn--fa-hia.de/"),          # UTS-46 like browsers, not IDNA 2003's "fass.de"
    ("http://FAß.DE./a", "http://xn--fa-hia.de./a"),
    ("http://☃.net/", "http://xn--n3h.net/"),             # symbols: IDNA 2003 still, as browsers resolve them
])
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected
    assert normalize_url(expected) == expected  # idempotent


@pytest.mark.parametrize("raw, reason", [
    ("ftp://example.com/a.jpg", "unsupported scheme 'ftp' (only http and https)"),
    ("file:///etc/passwd", "unsupported scheme 'file' (only http and https)"),
    ("javascript:alert(1)", "unsupported scheme 'javascript' (only http and https)"),
    ("data:image/png;base64,AAAA", "unsupported scheme 'data' (only http and https)"),
    ("FTP://example.com/", "unsupported scheme 'ftp' (only http and https)"),
    ("just some text", "not a URL"),
    ("example.com/a.jpg", "not a URL"),
    ("example.com:8080/a.jpg", "not a URL"),
    ("", "empty URL"),
    ("http://", "no host in URL"),
    ("http:///", "no host in URL"),
    ("http://user@/x", "no host in URL"),
    ("http://example.com:0/", "bad port"),
    ("http://example.com:65536/", "bad port"),
    ("http://example.com:http/", "bad port"),
    ("http://exa mple.com/", "bad host name"),
    ("http://a..example/", "bad host name"),
    ("http://" + "a" * 64 + ".example/", "bad host name"),
    ("http://ex<ample.com/", "bad host name"),
    ("http://[::zz]/", "bad host name"),
    ("http://300.1.2.3/", "bad host name"),
    ("http://" + "\u0660" * 60_000 + ".example/", "bad host name '\u0660"),  # refused before IDNA runs
])
def test_normalize_url_rejects(raw: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as info:
        normalize_url(raw)
    assert str(info.value).startswith(reason)
    assert isinstance(info.value, ValueError)


def test_equivalent_urls_normalise_to_the_same_string() -> None:
    variants = ["http://example.com/a.jpg", "HTTP://EXAMPLE.COM/a.jpg",
                "http://example.com:80/a.jpg", "http://example.com/a.jpg#top"]
    assert {normalize_url(v) for v in variants} == {"http://example.com/a.jpg"}
    assert normalize_url("http://example.com/A.jpg") != normalize_url("http://example.com/a.jpg")


def test_mask_url() -> None:
    assert mask_url("https://user:secret@example.com/a?b") == "https://user:***@example.com/a?b"
    assert mask_url("https://user@example.com/a") == "https://user@example.com/a"
    assert mask_url("https://example.com/a:b@c") == "https://example.com/a:b@c"
    assert mask_url("not a url") == "not a url"


def test_mask_url_hides_secret_query_parameters() -> None:
    signed = ("https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1"
              "&X-Amz-Security-Token=FwoG&X-Amz-Signature=9f86d0&x-id=GetObject")
    assert mask_url(signed) == ("https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                "&X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***&x-id=GetObject")
    assert mask_url("https://u:pw@example.com/a?TOKEN=t1&tokens=2&key=&Api%5FKey=k#access_token=z") == (
        "https://u:***@example.com/a?TOKEN=***&tokens=2&key=&Api%5FKey=***#access_token=***")
    assert mask_url("https://example.com/a?size=2&sig=s;session=q") == "https://example.com/a?size=2&sig=***;session=***"
    assert {"X-Goog-Signature", "api_key", "sessionid", "password"} <= set(SECRET_PARAMS)
    for name in SECRET_PARAMS:
        assert mask_url(f"http://example.com/?{name.lower()}=v&{name.upper()}=w") == (
            f"http://example.com/?{name.lower()}=***&{name.upper()}=***")


def test_records_and_log_lines_mask_secrets_but_keys_use_the_full_url(server, tmp_path, caplog) -> None:
    url = server.image_urls()[0] + "?X-Goog-Signature=c2VjcmV0&token=hunter2&w=1"
    masked = server.image_urls()[0] + "?X-Goog-Signature=***&token=***&w=1"
    with caplog.at_level(logging.INFO, logger="imgfetch.pids"):
        result = fetch(url, tmp_path / "one", log_pids=True, progress=False)
    assert result.status == "ok" and result.url == masked and result.key == url_key(url)
    assert masked in caplog.text and "hunter2" not in caplog.text
    [record] = download([url], tmp_path / "pool", workers=1, start_method="fork", progress=False)
    assert record.url == masked and record.key == url_key(url)
    manifest = (tmp_path / "pool" / "manifest.jsonl").read_text()
    assert "hunter2" not in manifest and json.loads(manifest)["url"] == masked


def test_url_key() -> None:
    key = url_key("http://example.com/a.jpg")
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    assert key == url_key("http://example.com/a.jpg")
    assert key == hashlib.sha256(b"http://example.com/a.jpg").hexdigest()[:32]
    assert key == url_key("HTTP://example.com:80/a.jpg#x")
    assert url_key("http://u:one@example.com/a.jpg") != url_key("http://u:two@example.com/a.jpg")
    assert url_key("http://example.com/b.jpg") != key
