"""Throughput against concurrency, drawn with Pillow (no plotting library needed)."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .sweep import BenchReport

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def parse_chart_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--chart-size takes WIDTHxHEIGHT like 1200x800, got {text!r}") from None
    if not (300 <= width <= 8000 and 200 <= height <= 8000):
        raise ValueError(f"--chart-size must be between 300x200 and 8000x8000, got {text!r}")
    return width, height


def _nice_ceiling(value: float) -> float:
    """The next 'round' axis top above value: 1, 2 or 5 times a power of ten, times 5 ticks."""
    if value <= 0:
        return 1.0
    step = value / 5
    power = 10 ** math.floor(math.log10(step))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= step:
            return factor * power * 5
    return value


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def draw_chart(report: BenchReport, path: str | Path, size: tuple[int, int], title: str) -> None:
    """Images/s (y) against concurrency (x, log2), one series per threads setting, plus the ideal line."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    unit = max(10, min(width, height) // 45)
    big, small = _font(int(unit * 1.5)), _font(unit)
    left, right, top, bottom = unit * 7, unit * 3, unit * 5, unit * 6
    plot_w, plot_h = width - left - right, height - top - bottom
    concurrencies = sorted({c.concurrency for c in report.pooled} | {1})
    x_max = max(concurrencies)
    base = report.sequential.images_per_s
    y_max = _nice_ceiling(max([c.images_per_s for c in report.pooled] + [base]) * 1.15)

    def xy(conc: float, rate: float) -> tuple[float, float]:
        frac = math.log2(conc) / math.log2(x_max) if x_max > 1 else 0.5
        return left + frac * plot_w, top + plot_h - min(rate, y_max) / y_max * plot_h

    draw.text((width / 2, unit * 2), title, fill="black", font=big, anchor="mm")
    for i in range(6):  # horizontal grid with labels
        rate = y_max * i / 5
        _, y = xy(1, rate)
        draw.line([(left, y), (left + plot_w, y)], fill="#dddddd", width=1)
        draw.text((left - unit // 2, y), f"{rate:g}", fill="black", font=small, anchor="rm")
    for conc in concurrencies:
        x, _ = xy(conc, 0)
        draw.line([(x, top), (x, top + plot_h)], fill="#eeeeee", width=1)
        draw.text((x, top + plot_h + unit // 2), str(conc), fill="black", font=small, anchor="ma")
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black", width=2)
    draw.text((left + plot_w / 2, height - unit * 2.5), "concurrency (workers x threads, log scale)",
              fill="black", font=small, anchor="mm")
    label = Image.new("RGBA", (plot_h, unit * 2), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((plot_h / 2, unit), "throughput (images/s)", fill="black", font=small, anchor="mm")
    label = label.rotate(90, expand=True)
    image.paste(label, (unit, top), label)
    # Ideal: the sequential rate times the concurrency, as far as the plot reaches.
    ideal = [xy(c, base * c) for c in concurrencies if base * c <= y_max]
    reach = y_max / base if base else 0
    if 1 <= reach < x_max:  # end the line where it leaves the plot instead of running along its top
        ideal.append(xy(reach, y_max))
    draw.line(ideal, fill="#888888", width=max(2, unit // 6), joint="curve")
    legend = [("ideal (sequential x concurrency)", "#888888")]
    series = sorted({(c.start_method, c.threads) for c in report.pooled})
    for index, (method, threads) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = sorted((c.concurrency, c.images_per_s) for c in report.pooled
                        if (c.start_method, c.threads) == (method, threads))
        coords = [xy(conc, rate) for conc, rate in points]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=max(3, unit // 4), joint="curve")
        for x, y in coords:
            r = max(4, unit // 3)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        legend.append((f"{method}, {threads} thread{'s' if threads > 1 else ''} per worker", colour))
    sx, sy = xy(1, base)
    draw.rectangle([sx - unit // 3, sy - unit // 3, sx + unit // 3, sy + unit // 3], fill="black")
    legend.append((f"sequential: {base:.1f} images/s", "black"))
    for index, (text, colour) in enumerate(legend):
        y = top + unit + index * unit * 1.6
        draw.rectangle([left + unit, y - unit // 3, left + unit * 2, y + unit // 3], fill=colour)
        draw.text((left + unit * 2.5, y), text, fill="black", font=small, anchor="lm")
    image.save(path, format="PNG")
