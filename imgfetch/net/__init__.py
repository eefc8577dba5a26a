"""One URL -> bytes. ``fetcher`` holds the request path (Fetcher: retries, redirects, size cap);
``budget`` the per-URL time budget and the waits between attempts; ``session`` proxies, TLS
verification and headers; ``auth`` the credentials each hop carries (URL userinfo, netrc);
``watchdog`` the hard cap that cuts a download past its deadline; ``failures`` failures described
for people (ERROR_KINDS), and which are permanent; ``limits`` open-file limits; ``optout`` the
X-Robots-Tag opt-outs and the User-Agent token.

May import: imgfetch.options, imgfetch.urls
"""
