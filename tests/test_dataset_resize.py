"""Datasets with --resize 256-style shaping: every image in the shards, read back and decoded, has the size
its record says, its smaller side at N and its aspect ratio kept (--resize-mode keep_ratio)."""
from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import FAST, read_tars
from imgfetch import download

SIDE = 48
DATASET = dict(FAST, workers=2, threads=4, start_method="fork", resize=SIDE, resize_mode="keep_ratio",
               shard_size=15)


def assert_resized(image: Image.Image, record: dict) -> None:
    """The image is what its record says, its smaller side SIDE, its aspect ratio the original's."""
    width, height = image.size
    assert (width, height) == (record["width"], record["height"])
    assert min(width, height) == SIDE
    original = record["original_width"] / record["original_height"]
    assert abs(width / height - original) <= 1.0 / SIDE * max(1.0, original)  # rounding to whole pixels


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_resized_images_read_back_from_the_shards(server, tmp_path, output_format):
    urls = server.image_urls()[:40]
    results = download(urls, tmp_path, output_format=output_format, **DATASET)
    assert len(results.ok) == len(urls)
    assert any(r.original_width != r.width for r in results)  # some were indeed resized
    records = {r.url: r.__dict__ for r in results}
    images = []
    if output_format == "webdataset":
        tars = sorted(str(p) for p in tmp_path.glob("*.tar"))
        for sample in read_tars(tars):
            (image,) = [value for value in sample.values() if isinstance(value, Image.Image)]
            images.append((image, sample["json"]["url"]))
    else:
        for path in sorted(tmp_path.glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                images.append((Image.open(io.BytesIO(row["image"])), row["url"]))
    assert sorted(url for _, url in images) == sorted(urls)  # every image, once
    for image, url in images:
        image.load()  # decoded whole
        assert_resized(image, records[url])
