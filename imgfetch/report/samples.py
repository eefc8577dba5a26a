"""Where a record's image is, to show it: its file, or its sample in a dataset shard (a tar member or a parquet row)."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from ..records import FetchResult

_NOT_IMAGES = (".json", ".txt")  # a sample's other members


class Samples:
    """Opens records' images for a contact sheet; each shard's tar index is read once."""

    def __init__(self, out_dir: str | os.PathLike[str] | None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._tars: dict[str, dict[str, tarfile.TarInfo]] = {}  # shard path -> sample key -> image member

    def source(self, record: FetchResult) -> str | io.BytesIO | None:
        """A path or the image's bytes; None when there is nowhere to look (no output folder given).
        Raises FileNotFoundError when the file, the shard or the sample is missing."""
        if record.abspath or record.path:
            return record.abspath or (str(self.out_dir / record.path) if self.out_dir is not None else None)
        if record.shard is None or record.sample is None or self.out_dir is None:
            return None
        shard = str(self.out_dir / record.shard)
        if shard.endswith(".tar"):
            return io.BytesIO(self._tar_member(shard, record.sample))
        return io.BytesIO(_parquet_image(shard, record.sample))

    def _tar_member(self, shard: str, sample: str) -> bytes:
        if shard not in self._tars:
            with tarfile.open(shard) as tar:  # headers only: members' data is skipped over
                self._tars[shard] = {member.name.split(".", 1)[0]: member for member in tar
                                     if member.isfile() and not member.name.endswith(_NOT_IMAGES)}
        member = self._tars[shard].get(sample)
        if member is None:
            raise FileNotFoundError(f"{sample} is not in {os.path.basename(shard)}")
        with open(shard, "rb") as handle:
            handle.seek(member.offset_data)
            return handle.read(member.size)


def _parquet_image(shard: str, sample: str) -> bytes:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise OSError("reading a parquet shard needs pyarrow: pip install 'imgfetch[dataset]'") from None
    if not os.path.exists(shard):
        raise FileNotFoundError(shard)
    table = pq.read_table(shard, columns=["key", "image"], filters=[("key", "==", sample)])
    if not table.num_rows:
        raise FileNotFoundError(f"{sample} is not in {os.path.basename(shard)}")
    data: Any = table.column("image")[0].as_py()
    return data
