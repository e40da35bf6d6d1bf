"""Small SVG charts for the quorum lab's report: no plotting library is
needed (nothing from PyPI is reachable), and the files open in any browser."""

from xml.sax.saxutils import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 170, 40, 50


def _ticks(lo, hi, count=5):
    if hi <= lo:
        return [lo]
    step = (hi - lo) / count
    return [lo + i * step for i in range(count + 1)]


def _fmt(v):
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2f}".rstrip("0").rstrip(".")


class Chart:
    """A chart with numeric axes: lines (solid or dashed), points, bars."""

    def __init__(self, title, xlabel, ylabel, xlim, ylim):
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.x0, self.x1 = xlim
        self.y0, self.y1 = ylim
        self.items = []
        self.legend = []

    def sx(self, x):
        span = (self.x1 - self.x0) or 1
        return LEFT + (x - self.x0) / span * (W - LEFT - RIGHT)

    def sy(self, y):
        span = (self.y1 - self.y0) or 1
        return H - BOTTOM - (y - self.y0) / span * (H - TOP - BOTTOM)

    def line(self, points, color, label=None, dashed=False):
        pts = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        self.items.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} '
                          f'points="{pts}"/>')
        for x, y in points:
            self.items.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="2.5" '
                              f'fill="{color}"/>')
        if label:
            self.legend.append((label, color, dashed))

    def point(self, x, y, color, label=None, text=None):
        self.items.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="4" '
                          f'fill="{color}"/>')
        if text:
            self.items.append(f'<text x="{self.sx(x) + 6:.1f}" y="{self.sy(y) - 4:.1f}" '
                              f'font-size="10">{escape(text)}</text>')
        if label:
            self.legend.append((label, color, False))

    def bar(self, x, width, y, color, label=None):
        x0, x1 = self.sx(x - width / 2), self.sx(x + width / 2)
        top, base = self.sy(y), self.sy(self.y0)
        self.items.append(f'<rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" '
                          f'height="{base - top:.1f}" fill="{color}"/>')
        if label and label not in [entry[0] for entry in self.legend]:
            self.legend.append((label, color, False))

    def xlabels(self, labels):
        """Category labels at x = 0, 1, 2, ... instead of numeric ticks."""
        self._xlabels = labels

    def render(self):
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
               f'viewBox="0 0 {W} {H}" font-family="sans-serif">',
               f'<rect width="{W}" height="{H}" fill="white"/>',
               f'<text x="{W / 2 - RIGHT / 2:.0f}" y="22" text-anchor="middle" font-size="14" '
               f'font-weight="bold">{escape(self.title)}</text>']
        for y in _ticks(self.y0, self.y1):
            out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{self.sy(y):.1f}" '
                       f'y2="{self.sy(y):.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{LEFT - 6}" y="{self.sy(y) + 4:.1f}" text-anchor="end" '
                       f'font-size="11">{_fmt(y)}</text>')
        labels = getattr(self, "_xlabels", None)
        if labels:
            for i, text in enumerate(labels):
                out.append(f'<text x="{self.sx(i):.1f}" y="{H - BOTTOM + 16}" '
                           f'text-anchor="middle" font-size="10">{escape(text)}</text>')
        else:
            for x in _ticks(self.x0, self.x1):
                out.append(f'<text x="{self.sx(x):.1f}" y="{H - BOTTOM + 16}" '
                           f'text-anchor="middle" font-size="11">{_fmt(x)}</text>')
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" '
                   f'stroke="black"/>')
        out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="black"/>')
        out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 12}" text-anchor="middle" '
                   f'font-size="12">{escape(self.xlabel)}</text>')
        out.append(f'<text x="16" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
                   f'font-size="12" transform="rotate(-90 16 {(TOP + H - BOTTOM) / 2:.0f})">'
                   f'{escape(self.ylabel)}</text>')
        out.extend(self.items)
        for i, (label, color, dashed) in enumerate(self.legend[:24]):
            y = TOP + 4 + i * 15
            dash = ' stroke-dasharray="6,4"' if dashed else ""
            out.append(f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 34}" y1="{y}" y2="{y}" '
                       f'stroke="{color}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{W - RIGHT + 38}" y="{y + 4}" font-size="10">'
                       f'{escape(label)}</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.render())
