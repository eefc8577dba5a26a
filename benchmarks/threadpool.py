"""The hand-written script every user has written once: ThreadPoolExecutor(N), one requests.Session per thread.

A failed URL is reported on stderr and skipped, as people write it once their first list has a dead
link (without the try/except, Executor.map stops at the first exception and cancels every URL not
yet started). It exits with 1 if any URL failed.

Usage: python threadpool.py URLS.txt OUT_DIR [THREADS=128] [TIMEOUT=30]

TIMEOUT is requests' timeout= (to connect, and for each read), in seconds.
"""
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

local = threading.local()


def session():
    if not hasattr(local, "session"):
        local.session = requests.Session()
    return local.session


def download(url, out, timeout):
    try:
        response = session().get(url, timeout=timeout)
        response.raise_for_status()
        with open(os.path.join(out, url.rstrip("/").rsplit("/", 1)[-1]), "wb") as handle:
            handle.write(response.content)
        return True
    except Exception as exc:  # one bad URL must not stop the list
        print(f"failed: {url}: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    with ThreadPoolExecutor(threads) as executor:
        ok = sum(executor.map(lambda u: download(u, out, timeout), urls))
    sys.exit(0 if ok == len(urls) else 1)
