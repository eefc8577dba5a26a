"""One URL -> bytes. ``fetcher`` holds the request path (Fetcher: retries, redirects, size cap);
``budget`` the per-URL time budget and the waits between attempts; ``session`` proxies, TLS
verification and headers; ``auth`` the credentials each hop carries (URL userinfo, netrc);
``adapter`` requests' adapter with imgfetch's connections and pools; ``resolve`` DNS lookups
inside the budget, cached per process; ``connect`` a TCP connection to any of a host's
addresses within one timeout; ``pools`` idle connections kept by one budget over all hosts;
``tls`` one TLS context per process that resumes sessions; ``watchdog`` the hard cap that cuts
a download past its deadline; ``failures`` failures described for people, each of an ErrorKind
(records.py); ``limits`` open-file limits; ``optout`` the X-Robots-Tag opt-outs and the
User-Agent token.
"""
