"""The classic concurrent.futures demonstration, as people write it: ProcessPoolExecutor(3).map(download_image, urls).

Usage: python classic.py URLS.txt OUT_DIR
"""
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import requests

OUT = sys.argv[2] if len(sys.argv) > 2 else "."


def download_image(url):
    print(f"[Process ID]:{os.getpid()} Downloading..")
    response = requests.get(url)
    name = os.path.join(OUT, url.rstrip("/").rsplit("/", 1)[-1])
    with open(name, "wb") as handle:
        handle.write(response.content)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    os.makedirs(OUT, exist_ok=True)
    with ProcessPoolExecutor(3) as executor:
        list(executor.map(download_image, urls))
