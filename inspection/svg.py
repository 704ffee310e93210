"""Inline SVG plots generated in Python: histogram, bar chart, line chart.

No JavaScript and no network: each function returns one ``<svg>`` element as a string, ready
to paste into the page. Every plot carries ``class="plot"``, ``data-kind`` (histogram, bars,
lines) and ``data-n`` (how many data values it draws), so a test can check that a plot holds
data. An empty input gives a plot that says "no data" with ``data-n="0"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 480, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 44
#: Height of one row of a line chart's legend, pixels.
LEGEND_ROW = 16
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def fmt(value: float) -> str:
    """A short label for a tick or a bar value (3 significant digits, k/M suffixes)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude < 1e-3:
        return f"{value:.1e}"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for an axis's ticks: ``fmt``'s, or with as many significant digits as it takes for
    no two ticks share a label (a nearly constant learning rate: 9.80e-05, 1.00e-04, 1.02e-04)."""
    labels = [fmt(t) for t in ticks]
    small = any(0 < abs(t) < 1e-3 for t in ticks)
    for digits in range(1, 12):
        if len(set(labels)) == len(labels):
            break
        labels = [f"{t:.{digits}e}" if small else f"{t:.{digits + 1}g}" for t in ticks]
    return labels


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _open(kind: str, n: int, title: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="plot" data-kind="{kind}" data-n="{n}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text class="title" x="{width / 2:.1f}" y="16" text-anchor="middle">{escape(title)}</text>',
    ]


def _empty(kind: str, title: str) -> str:
    parts = _open(kind, 0, title)
    parts.append(f'<text class="empty" x="{WIDTH / 2:.1f}" y="{HEIGHT / 2:.1f}" text-anchor="middle">no data</text></svg>')
    return "\n".join(parts)


class _Axes:
    """Maps data to the plot area; linear or log10 on each axis."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], log_x: bool = False, log_y: bool = False,
                 width: int = WIDTH, height: int = HEIGHT, left: int = MARGIN_LEFT, below: int = MARGIN_BOTTOM, counts_y: bool = False):
        self.log_x, self.log_y = log_x, log_y
        self.x0, self.x1 = (math.log10(v) for v in x_range) if log_x else x_range
        self.y0, self.y1 = (math.log10(v) for v in y_range) if log_y else y_range
        if self.x1 <= self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        if self.y1 <= self.y0:
            self.y0, self.y1 = self.y0 - 0.5, self.y1 + 0.5
        self.y_ticks = self._ticks(self.y0, self.y1, self.log_y)
        if counts_y:  # a count is a whole number: no tick at 0.5
            self.y_ticks = [y for y in self.y_ticks if float(y).is_integer()]
        self.y_labels = tick_labels(self.y_ticks)
        # room for the widest tick label (about 6.5 px a character) right of the axis label
        self.left = max(left, 24 + round(6.5 * max((len(label) for label in self.y_labels), default=0)))
        self.right = width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - below

    def px(self, x: float) -> float:
        x = math.log10(x) if self.log_x else x
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, y: float) -> float:
        y = math.log10(y) if self.log_y else y
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def _ticks(self, lo: float, hi: float, log: bool) -> list[float]:
        if not log:
            return nice_ticks(lo, hi)
        decades = [10.0**k for k in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)]
        return decades if len(decades) >= 2 else [10**v for v in nice_ticks(lo, hi)]

    def frame(self, xlabel: str, ylabel: str) -> list[str]:
        parts = [f'<rect class="area" x="{self.left}" y="{self.top}" width="{self.right - self.left}" height="{self.bottom - self.top}"/>']
        for y, label in zip(self.y_ticks, self.y_labels):
            py = self.py(y)
            parts.append(f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{py:.1f}" y2="{py:.1f}"/>')
            parts.append(f'<text class="tick" x="{self.left - 4}" y="{py + 3:.1f}" text-anchor="end">{label}</text>')
        x_ticks = self._ticks(self.x0, self.x1, self.log_x)
        for x, label in zip(x_ticks, tick_labels(x_ticks)):
            px = self.px(x)
            parts.append(f'<line class="tickmark" x1="{px:.1f}" x2="{px:.1f}" y1="{self.bottom}" y2="{self.bottom + 4}"/>')
            parts.append(f'<text class="tick" x="{px:.1f}" y="{self.bottom + 15}" text-anchor="middle">{label}</text>')
        parts.append(f'<text class="label" x="{(self.left + self.right) / 2:.1f}" y="{self.bottom + 34}" text-anchor="middle">{escape(xlabel)}</text>')
        parts.append(f'<text class="label" transform="translate(12 {(self.top + self.bottom) / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>')
        return parts


def histogram(values: Sequence[float], title: str, xlabel: str, bins: int | None = None, log_x: bool | None = None,
              ylabel: str = "count") -> str:
    """Histogram of the finite values.

    Args:
        values: the data (NaN, inf and None are ignored).
        ylabel: what a bar counts ("clips", "reconstructions").
        bins: number of bins; None gives 2 * sqrt(n), between 5 and 30.
        log_x: logarithmic bins; None chooses them when all values are positive and span more
            than two decades (motion magnitudes do).
    """
    data = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not data:
        return _empty("histogram", title)
    low, high = min(data), max(data)
    bins = bins or min(30, max(5, round(2 * math.sqrt(len(data)))))
    if log_x is None:
        log_x = low > 0 and high / low > 100
    if log_x and low <= 0:
        raise ValueError(f"histogram {title!r}: log_x needs positive values, min is {low}")
    t = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    t_low, t_high = t(low), t(high)
    if t_high <= t_low:  # one value: a narrow bin around it (a fraction's axis does not reach -0.3)
        pad = 0.05 * abs(t_low) or 0.5
        t_low, t_high = t_low - pad, t_high + pad
    width = (t_high - t_low) / bins
    counts = [0] * bins
    for v in data:
        counts[min(int((t(v) - t_low) / width), bins - 1)] += 1
    edges = [t_low + i * width for i in range(bins + 1)]
    if log_x:
        edges = [10**e for e in edges]
    axes = _Axes((edges[0], edges[-1]), (0, max(counts) * 1.05), log_x=log_x, counts_y=True)
    parts = _open("histogram", len(data), title) + axes.frame(xlabel + (" (log scale)" if log_x else ""), ylabel)
    for i, count in enumerate(counts):
        if count:
            x0, x1, y = axes.px(edges[i]), axes.px(edges[i + 1]), axes.py(count)
            parts.append(f'<rect class="bar" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" height="{axes.bottom - y:.1f}" '
                         f'fill="{PALETTE[0]}"><title>{fmt(edges[i])} .. {fmt(edges[i + 1])}: {count}</title></rect>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str = "", colors: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per label, with the value written at the end of each bar."""
    pairs = [(str(label), float(v)) for label, v in zip(labels, values) if v is not None and math.isfinite(float(v))]
    if not pairs:
        return _empty("bars", title)
    row = 22
    label_width = min(max(len(label) for label, _ in pairs) * 7 + 12, 200)
    height = MARGIN_TOP + row * len(pairs) + 12
    top = max(v for _, v in pairs)
    scale = (WIDTH - label_width - 70) / top if top > 0 else 0.0
    parts = _open("bars", len(pairs), title, height=height)
    for i, (label, value) in enumerate(pairs):
        y = MARGIN_TOP + i * row
        color = (colors[i % len(colors)] if colors else PALETTE[i % len(PALETTE)])
        length = max(value * scale, 0.0)
        parts.append(f'<text class="tick" x="{label_width - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row - 6}" fill="{color}">'
                     f'<title>{escape(label)}: {fmt(value)}{escape(unit)}</title></rect>')
        parts.append(f'<text class="value" x="{label_width + length + 4:.1f}" y="{y + 14}">{fmt(value)}{escape(unit)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _decimate(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    if len(xs) <= limit:
        return xs, ys
    stride = math.ceil(len(xs) / limit)
    keep = list(range(0, len(xs), stride))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
               log_y: bool | None = None, max_points: int = 1500, smooths: dict[str, str] | None = None) -> str:
    """One line per series (name -> (xs, ys)), with a legend below the axes when there are several.

    Args:
        log_y: logarithmic y axis; None chooses it when every value is positive and the values
            span more than two decades (losses usually do).
        max_points: each series is thinned to at most this many points (evenly, keeping the
            last) so event files with many steps stay small in the page.
        smooths: series name -> the series it smooths; the pair shares a colour and the raw
            series is drawn faded behind it.
    """
    smooths = smooths or {}
    clean: dict[str, tuple[list[float], list[float]]] = {}
    for name, (xs, ys) in series.items():
        pairs = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(float(y)) and math.isfinite(float(x))]
        if pairs:
            clean[name] = ([p[0] for p in pairs], [p[1] for p in pairs])
    n = sum(len(xs) for xs, _ in clean.values())
    if not n:
        return _empty("lines", title)
    all_x = [x for xs, _ in clean.values() for x in xs]
    all_y = [y for _, ys in clean.values() for y in ys]
    y_low, y_high = min(all_y), max(all_y)
    if log_y is None:
        log_y = y_low > 0 and y_high / y_low > 100
    if log_y and y_low <= 0:
        log_y = False
    if not log_y:
        pad = 0.05 * (y_high - y_low) or abs(y_high) * 0.05 or 1.0
        y_low, y_high = y_low - pad, y_high + pad
    # The legend (two columns, more than one series) goes below the x axis label, never over the lines.
    legend_rows = math.ceil(len(clean) / 2) if len(clean) > 1 else 0
    height = HEIGHT + LEGEND_ROW * legend_rows
    axes = _Axes((min(all_x), max(all_x)), (y_low, y_high), log_y=log_y, height=height, below=MARGIN_BOTTOM + LEGEND_ROW * legend_rows)
    parts = _open("lines", n, title, height=height) + axes.frame(xlabel, ylabel + (" (log scale)" if log_y else ""))
    column = (WIDTH - axes.left) // 2
    colors: dict[str, str] = {}
    for name in clean:
        base = smooths.get(name)
        colors[name] = colors[base] if base in colors else PALETTE[len(set(colors.values())) % len(PALETTE)]
    faded = set(smooths.values())
    for i, (name, (xs, ys)) in enumerate(clean.items()):
        color, opacity = colors[name], (0.35 if name in faded else 1.0)
        xs, ys = _decimate(xs, ys, max_points)
        if len(xs) == 1:
            parts.append(f'<circle class="point" cx="{axes.px(xs[0]):.1f}" cy="{axes.py(ys[0]):.1f}" r="3" fill="{color}" fill-opacity="{opacity}"/>')
        else:
            points = " ".join(f"{axes.px(x):.1f},{axes.py(y):.1f}" for x, y in zip(xs, ys))
            parts.append(f'<polyline class="line" data-series="{escape(name)}" fill="none" stroke="{color}" stroke-opacity="{opacity}" '
                         f'stroke-width="1.5" points="{points}"/>')
        if legend_rows:
            x, y = axes.left + column * (i % 2), axes.bottom + MARGIN_BOTTOM - 4 + LEGEND_ROW * (i // 2)
            parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}" fill-opacity="{opacity}"/>')
            parts.append(f'<text class="legend" x="{x + 14}" y="{y + 9}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
