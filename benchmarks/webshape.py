"""The web-shaped scenarios of realistic.py (web, web-faulty): HTTPS over hundreds of hosts.

- A private CA made with openssl: a CA certificate and one wildcard certificate for *.webshape.test
  (ECDSA P-256, valid 2 days, in the run's work folder). Every tool is given the same trust store:
  imgfetch --ca-bundle, curl --cacert, aria2c --ca-certificate, the thread pool REQUESTS_CA_BUNDLE.
  By default (--web-trust bundle) that is certifi's roots plus the private CA, as a user's store
  holds ~140 roots: requests and urllib3 load the whole file again for every new connection, which
  a bundle of one certificate would hide. --web-trust ca gives the private CA alone.
- nginx (one worker, echo module; HTTP/1.1 over TLS, session cache and tickets on) listens on one
  loopback address per host name: img-000.webshape.test is 127.0.101.1, img-001 127.0.101.2, ...
  The names go into /etc/hosts for the run (hostsfile.py takes them out again, Ctrl-C included).
- URLs per host follow Zipf (s = 1: the top host has about 1/H(hosts) of the list, the smallest one
  URL), in random order; each image answers after a log-normal delay (median 80 ms, sigma 1,
  cap 5 s) and is one of the corpus's web-sized images (web_size: about 600 x 450, tens of KB).
- web-faulty: the same list, with about 2 % of its URLs on dead hosts (connection refused) and
  404 3 %, 403 1 %, 500 1 %, hang 1 %, drip 0.5 %, closed without an answer 0.5 % and HTML sent as
  image/jpeg 0.5 %, spread at random over the live hosts.
- Every URL carries its run's tag (r=SCENARIO-ROUND-TOOL) and nginx logs `$connection
  $ssl_session_reused` for every request, so each run's connections (distinct serials) and resumed
  TLS sessions come from the server's log. stub_status's accepted count, read before and after
  each run, is a cross-check that also counts connections that carried no request.
"""
from __future__ import annotations

import os
import random
import shutil
import ssl
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import benchlib
from benchlib import EXTS, HERE, PY
from hostsfile import HOSTS, HostsBlock
from scenarios import LOGNORMAL_MEDIAN_S, LOGNORMAL_SIGMA, lognormal_delays

DOMAIN = "webshape.test"
ZIPF_S = 1.0
MAX_TIME_S, TIMEOUT_S, RETRIES = 10, 5, 2  # the per-URL caps every tool gets in these scenarios
HANG_S = MAX_TIME_S + 3  # a hang outlasts every tool's cap
DRIP_RATE, DRIP_BYTES = 150, 1500  # bytes/s; a drip (a cut JPEG) ends after 10 s
DEAD_SHARE = 0.02
WEB_FAULTS = (("404", 0.03), ("403", 0.01), ("500", 0.01), ("hang", 0.01), ("drip", 0.005),
              ("close", 0.005), ("html", 0.005))
APT = "apt-get update && apt-get install -y nginx-light libnginx-mod-http-echo openssl curl aria2"
ARIA2C_FLAGS = ["-j", "128", f"--connect-timeout={TIMEOUT_S}", f"--timeout={TIMEOUT_S}",
                f"--max-tries={MAX_TIME_S // TIMEOUT_S}", "--retry-wait=0", "--lowest-speed-limit=1K",
                "--allow-overwrite=true", "--auto-file-renaming=false", "--file-allocation=none",
                "--summary-interval=0", "-q"]
CURL_FLAGS = ["--parallel", "--parallel-max", "200", "--max-time", str(MAX_TIME_S), "--connect-timeout",
              str(TIMEOUT_S), "--retry", str(RETRIES), "--retry-max-time", str(MAX_TIME_S), "-s",
              "--no-progress-meter", "--fail"]
IMGFETCH_CAPS = ["--max-time", str(MAX_TIME_S), "--timeout", str(TIMEOUT_S), "--retries", str(RETRIES)]
CAPS_NOTE = (f"per-URL caps: imgfetch --max-time {MAX_TIME_S} --timeout {TIMEOUT_S} --retries {RETRIES}; "
             f"curl the same (--retry-max-time {MAX_TIME_S}); aria2c {MAX_TIME_S // TIMEOUT_S} tries of "
             f"{TIMEOUT_S} s (no total cap; a body under 1 KiB/s is dropped after its 10 s grace); the thread "
             f"pool timeout={TIMEOUT_S} per read, no retries, no total cap (a drip runs to its end)")


def missing(tools: list[str]) -> list[str]:
    """What the web scenarios need and this machine lacks."""
    lacking = []
    if not benchlib.nginx_binary():
        lacking.append("nginx (nginx-light)")
    if not os.path.exists(benchlib.ECHO_MODULE):
        lacking.append("nginx's echo module (libnginx-mod-http-echo)")
    for binary, tool in (("openssl", None), ("curl", "curl"), ("aria2c", "aria2c")):
        if (tool is None or tool in tools) and not shutil.which(binary):
            lacking.append(binary if binary != "aria2c" else "aria2c (aria2)")
    if not os.access(HOSTS, os.W_OK):
        lacking.append(f"write access to {HOSTS} (run as root)")
    return lacking


def live_name(k: int) -> str:
    return f"img-{k:03d}.{DOMAIN}"


def dead_name(k: int) -> str:
    return f"dead-{k:03d}.{DOMAIN}"


def live_address(k: int) -> str:
    return f"127.0.{101 + k // 250}.{1 + k % 250}"


def dead_address(k: int) -> str:
    return f"127.0.100.{1 + k % 250}"  # nothing listens there: connection refused


def _openssl(args: list[str], cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for *.DOMAIN, its key), made with openssl in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
              "-subj", "/CN=imgfetch webshape benchmark CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], folder)
    _openssl(["req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN=*.{DOMAIN}"], folder)
    (folder / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName=DNS:*.{DOMAIN}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "2",
              "-set_serial", f"0x{random.getrandbits(64):x}", "-out", "server.pem", "-extfile", "server.ext"], folder)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def root_bundle() -> str:
    """The public roots a user's tools trust by default: certifi's (requests' own), else Debian's."""
    try:
        import certifi
        return certifi.where()
    except ImportError:
        return "/etc/ssl/certs/ca-certificates.crt"


def zipf_hosts(n: int, hosts: int, rng: random.Random) -> list[int]:
    """The host of each of n URLs: host k has about n / (k + 1)^s / H URLs (at least one), shuffled."""
    weights = [1 / (k + 1) ** ZIPF_S for k in range(hosts)]
    total = sum(weights)
    shares = [n * w / total for w in weights]
    counts = [max(1, int(s)) for s in shares]
    order = sorted(range(hosts), key=lambda k: int(shares[k]) - shares[k])  # largest remainders first
    for k in order[:max(0, n - sum(counts))]:
        counts[k] += 1
    for k in range(hosts):  # the floor of one URL per host can overshoot: trim the biggest hosts
        if sum(counts) <= n:
            break
        counts[k] -= min(counts[k] - 1, sum(counts) - n)
    seq = [k for k in range(hosts) for _ in range(counts[k])]
    rng.shuffle(seq)
    return seq


def fault_path(kind: str, i: int, delay: float) -> str:
    return {"404": f"/v/missing/{i}.jpg?s={delay:.3f}&u={i}", "403": f"/forbidden/{i}.jpg?u={i}",
            "500": f"/error/{i}.jpg?u={i}", "hang": f"/hang/{i}.jpg?u={i}", "drip": f"/drip/drip.jpg?u={i}",
            "close": f"/close/{i}.jpg?u={i}", "html": f"/html/{i}.jpg?u={i}"}[kind]


class WebShape:
    """The CA, the /etc/hosts block and nginx of the web scenarios; close() undoes all three."""

    def __init__(self, work: Path, corpus: Path, hosts: int, trust: str = "bundle") -> None:
        self.work, self.corpus, self.hosts, self.trust = work, corpus, hosts, trust
        self.block: HostsBlock | None = None
        self.nginx = None
        self.port = 0
        self.ca = self.bundle = self.log = None

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o755)  # nginx's worker drops root and reads the drip file here
        self.ca, cert, key = make_ca(self.work / "ca")
        self.bundle = self.ca
        if self.trust == "bundle":
            self.bundle = self.work / "ca" / "bundle.pem"
            self.bundle.write_text(Path(root_bundle()).read_text().rstrip("\n") + "\n" + self.ca.read_text())
        cut = next(p for p in sorted(self.corpus.iterdir()) if p.suffix == ".jpg").read_bytes()[:DRIP_BYTES]
        (self.work / "drip").mkdir(exist_ok=True)
        (self.work / "drip").chmod(0o755)
        (self.work / "drip" / "drip.jpg").write_bytes(cut)
        entries = [(live_address(k), live_name(k)) for k in range(self.hosts)]
        entries += [(dead_address(k), dead_name(k)) for k in range(self.hosts)]
        self.block = HostsBlock(entries)
        self.block.__enter__()
        self.log = self.work / "nginx" / "access.log"
        started = benchlib.start_nginx(self.work / "nginx", self._server_block(cert, key),
                                       modules=(benchlib.ECHO_MODULE,), http_extra=self._http_extra())
        if started is None:
            raise RuntimeError("nginx is not installed")
        self.nginx, plain = started
        self.port = int(plain.rsplit(":", 1)[1])
        self._check()

    def _http_extra(self) -> str:
        return (f"include {benchlib.MIME_TYPES}; default_type application/octet-stream; sendfile on; "
                "log_format webshape '$connection $ssl_session_reused $status $request_uri'; "
                "ssl_session_cache shared:WEB:20m; ssl_session_timeout 30m; ")

    def _server_block(self, cert: Path, key: Path) -> str:
        listens = "".join(f"listen {live_address(k)}:{{port}} ssl backlog=1024; " for k in range(self.hosts))
        return (f"{listens} server_name _; ssl_certificate {cert}; ssl_certificate_key {key}; "
                f"access_log {self.log} webshape; "
                "location = /nginx-status { stub_status; access_log off; } "
                "location ~ ^/v/(?<p>.*)$ { echo_sleep $arg_s; echo_exec /static/$p; } "
                f"location /static/ {{ internal; alias {self.corpus}/; }} "
                f"location /hang/ {{ echo_sleep {HANG_S}; echo late; }} "
                f"location /drip/ {{ limit_rate {DRIP_RATE}; alias {self.work / 'drip'}/; }} "
                "location /forbidden/ { return 403; } location /error/ { return 500; } "
                "location /close/ { return 444; } "
                "location /html/ { default_type image/jpeg; return 200 '<!doctype html><title>x</title>'; }")

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.bundle))

    def base(self, k: int, dead: bool = False) -> str:
        return f"https://{dead_name(k) if dead else live_name(k)}:{self.port}"

    def _check(self) -> None:
        """An image over TLS from the first and the last host; a dead host refuses. Raises otherwise."""
        for k in (0, self.hosts - 1):
            url = f"{self.base(k)}/v/0.jpg?s=0&u=check&r=check"
            with urllib.request.urlopen(url, timeout=10, context=self._context()) as resp:
                if resp.read() != (self.corpus / "0.jpg").read_bytes():
                    raise RuntimeError(f"nginx check failed: {url} did not answer the corpus image")
        try:
            urllib.request.urlopen(f"{self.base(0, dead=True)}/v/0.jpg", timeout=5, context=self._context())
        except urllib.error.URLError as exc:
            if "refused" not in str(exc.reason).lower():
                raise RuntimeError(f"a dead host should refuse, not: {exc.reason}") from None
        else:
            raise RuntimeError("a dead host answered")

    def close(self) -> None:
        try:
            benchlib.stop(self.nginx)
        finally:
            if self.block is not None:
                self.block.remove()

    # ------------------------------------------------------------------ URL lists
    def lists(self, name: str, n: int, seed: int, corpus_size: int) -> tuple[str, list[str], list[str], list[float]]:
        """(title, urls, kinds, image delays) of scenario `name` (web or web-faulty)."""
        rng = random.Random(seed)
        hosts = min(self.hosts, n)
        seq = zipf_hosts(n, hosts, rng)
        delays = lognormal_delays(rng, n)
        urls, kinds = [], ["image"] * n
        for i, (k, d) in enumerate(zip(seq, delays)):
            j = i % corpus_size
            urls.append(f"{self.base(k)}/v/{j}.{EXTS[j % 4]}?s={d:.3f}&u={i}")
        top = max(seq.count(0), 1)
        title = (f"{n} HTTPS URLs over {hosts} hosts (one loopback address each), Zipf s={ZIPF_S:g} "
                 f"(top host {top} URLs), log-normal delays (median {LOGNORMAL_MEDIAN_S * 1000:g} ms, sigma "
                 f"{LOGNORMAL_SIGMA:g}), web-sized images")
        if name == "web-faulty":
            frng = random.Random(seed + 1)
            dead, dead_urls = set(), 0
            for k in frng.sample(range(min(10, hosts), hosts), max(0, hosts - min(10, hosts))):
                if dead_urls >= DEAD_SHARE * n:
                    break
                dead.add(k)
                dead_urls += seq.count(k)
            for i, k in enumerate(seq):
                if k in dead:
                    urls[i] = urls[i].replace(self.base(k), self.base(k, dead=True))
                    kinds[i] = "dead"
            live = [i for i in range(n) if kinds[i] == "image"]
            picks = frng.sample(live, min(len(live), sum(round(n * s) for _, s in WEB_FAULTS)))
            at = 0
            for kind, share in WEB_FAULTS:
                for i in picks[at:at + round(n * share)]:
                    urls[i], kinds[i] = self.base(seq[i]) + fault_path(kind, i, delays[i]), kind
                at += round(n * share)
            title += (f"; {len(dead)} dead hosts ({dead_urls} URLs, connection refused) and "
                      + ", ".join(f"{k} {s:.1%}" for k, s in WEB_FAULTS))
        image_delays = [d for d, kind in zip(delays, kinds) if kind == "image"]
        return title, urls, kinds, image_delays

    @staticmethod
    def tagged(urls: list[str], tag: str) -> list[str]:
        return [f"{u}&r={tag}" for u in urls]

    # ------------------------------------------------------------------ tools
    def argv(self, tool: str, lists: dict[str, Path], out: Path, imgfetch_extra: list[str]) -> list[str]:
        if tool in ("imgfetch", "imgfetch-verify-none"):
            extra = ["--verify", "none"] if tool == "imgfetch-verify-none" else []
            return [PY, "-m", "imgfetch", "get", str(lists["txt"]), "-o", str(out), "-q", "--ca-bundle",
                    str(self.bundle), *IMGFETCH_CAPS, *extra, *imgfetch_extra]
        if tool == "threadpool":
            return [PY, str(HERE / "threadpool.py"), str(lists["txt"]), str(out), "128", str(TIMEOUT_S)]
        if tool == "curl":
            return ["curl", *CURL_FLAGS, "--cacert", str(self.bundle), "--output-dir", str(out), "-K",
                    str(lists["curl"])]
        if tool == "aria2c":
            return ["aria2c", "-i", str(lists["aria2c"]), "-d", str(out), f"--ca-certificate={self.bundle}",
                    *ARIA2C_FLAGS]
        raise ValueError(f"{tool} does not run in the web scenarios")

    def env(self, tool: str) -> dict[str, str] | None:
        return {**os.environ, "REQUESTS_CA_BUNDLE": str(self.bundle)} if tool == "threadpool" else None

    # ------------------------------------------------------------------ counting
    def accepted(self) -> int:
        """nginx's count of accepted connections (stub_status); this request's own included."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/nginx-status", timeout=10) as resp:
            text = resp.read().decode()
        return int(text.split("\n")[2].split()[0])

    def log_counts(self) -> dict[str, dict[str, int]]:
        """Per run tag: requests logged, distinct connections, connections on a resumed TLS session."""
        seen: dict[str, dict[str, set]] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            parts = line.split(" ", 3)
            if len(parts) != 4:
                continue
            serial, reused, _status, uri = parts
            tag = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get("r", ["-"])[0]
            mine = seen.setdefault(tag, {"requests": [], "connections": set(), "resumed": set()})
            mine["requests"].append(serial)
            mine["connections"].add(serial)
            if reused == "r":
                mine["resumed"].add(serial)
        return {tag: {k: len(v) for k, v in d.items()} for tag, d in seen.items()}

    def settle(self, faulty: bool) -> None:
        """Wait until the last run's hangs and drips have ended, so that nginx has logged them."""
        if faulty:
            time.sleep(max(HANG_S, DRIP_BYTES / DRIP_RATE) + 1)


def add_connections(runs: list[dict], counts: dict[str, dict[str, int]]) -> None:
    for run in runs:
        mine = counts.get(run["tag"], {})
        run.update({"connections": mine.get("connections", 0), "tls_resumed": mine.get("resumed", 0),
                    "requests_logged": mine.get("requests", 0)})


def connection_report(runs: list[dict], labels: dict[str, str]) -> str:
    """The connections table of one web scenario: medians per tool, and the ratio to curl's."""
    tools = list(dict.fromkeys(r["tool"] for r in runs))
    med = {t: {k: statistics.median(r[k] for r in runs if r["tool"] == t)
               for k in ("connections", "tls_resumed", "accepted", "requests_logged", "good")} for t in tools}
    curl = med.get("curl", {}).get("connections")
    lines = ["| tool | connections (log) | runs | ÷ curl's | accepted (stub_status) | TLS sessions resumed | "
             "requests logged | requests per connection |", "|---|---|---|---|---|---|---|---|"]
    for t in tools:
        m = med[t]
        runs_c = " ".join(str(r["connections"]) for r in runs if r["tool"] == t)
        ratio = f"{m['connections'] / curl:.2f}×" if curl else "–"
        per = f"{m['requests_logged'] / m['connections']:.1f}" if m["connections"] else "–"
        lines.append(f"| {labels[t]} | {m['connections']:g} | {runs_c} | {ratio} | {m['accepted']:g} | "
                     f"{m['tls_resumed']:g} | {m['requests_logged']:g} | {per} |")
    lines += ["", "connections (log) = distinct `$connection` serials in nginx's log among the run's requests; "
              "accepted = nginx's stub_status count over the run (it also counts connections that carried no "
              "request); TLS sessions resumed = connections whose `$ssl_session_reused` is `r`. Medians of the "
              "rounds. Dead hosts refuse, so they open nothing."]
    return "\n".join(lines)
