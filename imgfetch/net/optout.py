"""Opt-outs and identity: the X-Robots-Tag directives that refuse an image, and the User-Agent we send.

A site opts an image out with a response header such as ``X-Robots-Tag: noai`` (for every robot) or
``X-Robots-Tag: mybot: noimageai`` (for the robot whose user-agent token is ``mybot``). Directives
addressed to another robot do not apply to us. The decision is made from the headers alone, before
any of the body is read.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..options import Options
from ..records import ErrorKind
from .failures import Failure

HEADER = "X-Robots-Tag"
# Directives whose value follows a colon: "unavailable_after: 25 Jun 2010", "max-image-preview: large".
# Anything else before a colon is a robot's user-agent token.
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_ADDRESSED = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*:\s*(.*)$")


def user_agent(opts: Options) -> str:
    """--user-agent, with '(compatible; NAME; +URL)' appended for --user-agent-token."""
    if not opts.user_agent_token:
        return opts.user_agent
    url = f"; +{opts.user_agent_url}" if opts.user_agent_url else ""
    return f"{opts.user_agent} (compatible; {opts.user_agent_token}{url})"


def our_tokens(opts: Options) -> frozenset[str]:
    """The robot names directives may address to us (lower case): --user-agent-token, and the product
    token that --user-agent starts with ('imgfetch' of 'imgfetch/1.2')."""
    product = opts.user_agent.split("/", 1)[0].split()[0].lower() if opts.user_agent.strip() else ""
    return frozenset(t for t in (product, (opts.user_agent_token or "").lower()) if t)


def refuse_opted_out(headers: Any, opts: Options, status: int, url: str) -> None:
    """Raise a permanent ``disallowed`` Failure when the response's X-Robots-Tag headers opt it out.

    ``headers``: urllib3's, which keep repeated headers apart (requests joins them with commas, and
    "otherbot: noindex" joined to "noai" would wrongly address noai to otherbot)."""
    values = headers.getlist(HEADER) if hasattr(headers, "getlist") else [v for v in [headers.get(HEADER)] if v]
    refused = opted_out(values, opts.disallowed_header_directives, our_tokens(opts)) if values else None
    if refused:
        raise Failure(f"disallowed by X-Robots-Tag: {refused}", ErrorKind.DISALLOWED, transient=False, status=status,
                      final_url=url)


def opted_out(values: Iterable[str], disallowed: tuple[str, ...], tokens: frozenset[str]) -> str | None:
    """The first disallowed directive that applies to us among X-Robots-Tag header ``values``, or None.

    In one header value, ``token:`` starts the directives addressed to that robot, up to the next
    ``token:``; directives before any token are for every robot.
    """
    if not disallowed:
        return None
    for value in values:
        audience: str | None = None  # None: every robot
        for item in value.split(","):
            addressed = _ADDRESSED.match(item)
            if addressed and addressed.group(1).lower() not in _VALUED:
                audience, item = addressed.group(1).lower(), addressed.group(2)
            directive = item.strip().lower()
            if directive in disallowed and (audience is None or audience in tokens):
                return directive if audience is None else f"{audience}: {directive}"
    return None
