"""Contact sheets: a grid of thumbnails of downloaded images, drawn with Pillow.

Each cell is labelled with the record's line number and file name (and the image's format
and size); a failed URL, when asked for, is a tinted blank labelled with its error. An image is read
from its file, or from its sample in a dataset shard (a tar member or a parquet row).
"""
from __future__ import annotations

import io
import os
import tarfile
import textwrap
from pathlib import Path
from typing import Any, Iterable

from ..records import FAILED, INVALID, OK, FetchResult, human_bytes

BACKGROUND = (255, 255, 255)
CELL_BACKGROUND = (240, 240, 240)
FAILED_BACKGROUND = (250, 228, 228)
TEXT = (40, 40, 40)
MUTED = (110, 110, 110)
ERROR_TEXT = (150, 20, 20)
GAP = 8  # pixels around and between cells
LABEL_LINES = 2  # under each cell: line number and file name, then format and size
COUNT = 24  # cells in a sheet by default
CELL = 160  # pixels a side of a cell by default
MIN_CELL = 32  # smaller than this, neither thumbnail nor label can be read
COLUMNS = 6  # cells a row by default
MIN_FONT = 10  # pixels: the smallest label font
CELL_PER_FONT = 13  # the label font is a 13th of the cell
LINE_GAP = 3  # pixels between label lines
PADDING = 4  # pixels between a cell's edge and its text
MIN_WRAP = 8  # characters a line of an error message, at least
FALLBACK_CHAR_WIDTH = 6  # pixels, for a font that reports no width
JPEG_QUALITY = 90  # a contact sheet shown as JPEG: small, with labels that stay readable
_NOT_IMAGES = (".json", ".txt")  # a sample's other members


def contact_sheet(records: Iterable[FetchResult], out_dir: str | os.PathLike[str] | None = None, *,
                  n: int = COUNT, failed: bool = False, columns: int | None = None, cell: int = CELL) -> Any:
    """A PIL image of the first ``n`` downloaded images (and failed URLs as blanks if ``failed``)."""
    from PIL import Image, ImageDraw

    if n < 1 or cell < MIN_CELL:
        raise ValueError(f"contact sheet needs n >= 1 and cell >= {MIN_CELL}, got n={n}, cell={cell}")
    wanted = (OK, FAILED, INVALID) if failed else (OK,)
    chosen = [r for r in records if r.status in wanted][:n]
    font = _font(max(MIN_FONT, cell // CELL_PER_FONT))
    line_height = font.getbbox("Ag")[3] + LINE_GAP  # [3]: the bottom of the tallest letters
    columns = max(1, min(columns or COLUMNS, len(chosen) or 1))
    rows = max(1, -(-len(chosen) // columns))
    width, height = cell, cell + LABEL_LINES * line_height + PADDING
    sheet = Image.new("RGB", (GAP + columns * (width + GAP), GAP + rows * (height + GAP)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    samples = Samples(out_dir)
    if not chosen:
        draw.text((GAP, GAP), "no images to show", fill=MUTED, font=font)
    for index, record in enumerate(chosen):
        x = GAP + (index % columns) * (width + GAP)
        y = GAP + (index // columns) * (height + GAP)
        _draw_cell(sheet, draw, record, samples, (x, y), cell, font, line_height)
    return sheet


def show(records: Iterable[FetchResult], n: int = COUNT, *, failed: bool = False, columns: int | None = None,
         cell: int = CELL, path: str | os.PathLike[str] | None = None) -> Any:
    """Show a contact sheet of ``records`` (a download() result, or any records).

    In Jupyter it is displayed (and None returned); elsewhere the PIL image is returned.
    With ``path`` it is also saved there as a PNG.
    """
    from .progress import in_jupyter

    out_dir = getattr(records, "out_dir", None)
    image = contact_sheet(records, out_dir, n=n, failed=failed, columns=columns, cell=cell)
    if path is not None:
        image.save(path, "PNG", optimize=True)
    if in_jupyter():
        from IPython.display import Image, display

        display(Image(data=smallest_encoding(image)))  # one copy in the notebook, not Pillow's PNG and JPEG both
        return None
    return image


def smallest_encoding(image: Any) -> bytes:
    """The sheet as PNG or as JPEG, whichever is smaller.

    Thumbnails of photos come out 3-5 times smaller as JPEG, and at JPEG_QUALITY the labels stay
    sharp; a sheet of mostly labelled blanks is smaller as PNG, and crisper too.
    """
    encoded = []
    for fmt, settings in (("PNG", {}), ("JPEG", {"quality": JPEG_QUALITY})):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **settings)
        encoded.append(buffer.getvalue())
    return min(encoded, key=len)


def _draw_cell(sheet: Any, draw: Any, record: FetchResult, samples: Samples, origin: tuple[int, int], cell: int,
               font: Any, line_height: int) -> None:
    x, y = origin
    line = f"{record.line}" if record.line is not None else "-"
    if record.status == OK:
        thumb, problem = _thumbnail(record, samples, cell)
    else:
        thumb, problem = None, record.error or record.status
    box = FAILED_BACKGROUND if record.status in (FAILED, INVALID) or problem else CELL_BACKGROUND
    draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=box)
    if thumb is not None:
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        detail = f"{record.format} {record.width}x{record.height}, {human_bytes(record.bytes)}"
        name = record.path.rsplit("/", 1)[-1] if record.path else f"{record.shard}:{record.sample}"
    else:
        message = f"{record.status}: {problem}" if record.status != OK else str(problem)
        chars = max(MIN_WRAP, int(cell / (font.getlength("n") or FALLBACK_CHAR_WIDTH)))
        for i, text in enumerate(textwrap.wrap(message, chars)[:cell // line_height - 1]):
            draw.text((x + PADDING, y + PADDING + i * line_height), text, fill=ERROR_TEXT, font=font)
        detail = "no image" if record.status == OK else record.status
        name = record.url.rstrip("/").rsplit("/", 1)[-1] or record.url
    label_y = y + cell + LINE_GAP
    number = f"{line}  "
    draw.text((x, label_y), number, fill=MUTED, font=font)
    offset = int(font.getlength(number))
    draw.text((x + offset, label_y), _fit(name, font, cell - offset), fill=TEXT, font=font)
    draw.text((x, label_y + line_height), _fit(detail, font, cell), fill=MUTED if thumb is not None else ERROR_TEXT,
              font=font)


def _thumbnail(record: FetchResult, samples: Samples, cell: int) -> tuple[Any, str | None]:
    """(an RGB thumbnail that fits the cell, None) or (None, why it cannot be shown)."""
    from PIL import Image, ImageOps

    try:
        path = samples.source(record)  # a file, or a sample's bytes from its shard
        if path is None:
            return None, "no file (pass the output folder)"
        with Image.open(path) as image:
            image.draft("RGB", (cell, cell))  # JPEG: decode at a fraction of the size
            image = ImageOps.exif_transpose(image)
            image.thumbnail((cell, cell))
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, CELL_BACKGROUND)
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat, None
            return image.convert("RGB"), None
    except FileNotFoundError:
        return None, "file missing"
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"cannot open: {exc}"


def _fit(text: str, font: Any, width: int) -> str:
    """The text, cut with '...' to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font where FreeType is available
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


class Samples:
    """Opens records' images for a contact sheet; each shard's tar index is read once."""

    def __init__(self, out_dir: str | os.PathLike[str] | None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._tars: dict[str, dict[str, tarfile.TarInfo]] = {}  # shard path -> sample key -> image member

    def source(self, record: FetchResult) -> str | io.BytesIO | None:
        """A path or the image's bytes; None when there is nowhere to look (no output folder given).
        Raises FileNotFoundError when the file, the shard or the sample is missing."""
        if record.abspath or self.out_dir is None:
            return record.abspath
        if record.path:
            return str(self.out_dir / record.path)
        if record.shard is None or record.sample is None:
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
