"""A minimal x/y chart in SVG (linear axes, ticks, lines, bands, bars, points, legend):
the backtest report's plots, with no plotting dependency."""

from __future__ import annotations

import html

W, H, PAD = 420, 300, 44
"""Width, height and padding of every chart, in pixels."""


class Plot:
    """A minimal x/y chart in SVG: linear axes, ticks, lines, bands, bars and points."""

    def __init__(self, title: str, x: tuple[float, float], y: tuple[float, float],
                 x_label: str, y_label: str) -> None:
        self.x0, self.x1 = x
        self.y0, self.y1 = y
        self.parts: list[str] = [
            f'<text x="{W / 2}" y="16" text-anchor="middle" class="t">{html.escape(title)}'
            "</text>",
            f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle">{html.escape(x_label)}</text>',
            f'<text x="12" y="{H / 2}" text-anchor="middle" transform="rotate(-90 12 {H / 2})">'
            f"{html.escape(y_label)}</text>",
            f'<rect x="{PAD}" y="{PAD / 2}" width="{W - 1.5 * PAD}" height="{H - 1.5 * PAD}" '
            'fill="none" stroke="#999"/>',
        ]

    def sx(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return PAD + (v - self.x0) / span * (W - 1.5 * PAD)

    def sy(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return H - PAD + (self.y0 - v) / span * (H - 1.5 * PAD)

    def ticks(self, xs: list[tuple[float, str]], ys: list[tuple[float, str]]) -> None:
        for v, label in xs:
            self.parts.append(f'<text x="{self.sx(v):.1f}" y="{H - PAD + 14}" '
                              f'text-anchor="middle">{html.escape(label)}</text>')
        for v, label in ys:
            self.parts.append(f'<text x="{PAD - 4}" y="{self.sy(v) + 4:.1f}" '
                              f'text-anchor="end">{html.escape(label)}</text>')

    def line(self, points: list[tuple[float, float]], color: str, dash: str = "",
             width: float = 1.8) -> None:
        if len(points) < 2:
            return
        d = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in points)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                          f'stroke-width="{width}"{extra}/>')

    def band(self, lower: list[tuple[float, float]], upper: list[tuple[float, float]],
             color: str) -> None:
        pts = upper + lower[::-1]
        d = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in pts)
        self.parts.append(f'<polygon points="{d}" fill="{color}" fill-opacity="0.18" '
                          'stroke="none"/>')

    def points(self, points: list[tuple[float, float]], color: str, r: float = 3.2) -> None:
        for x, y in points:
            self.parts.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="{r}" '
                              f'fill="{color}"/>')

    def bars(self, bars: list[tuple[float, float, float]], color: str) -> None:
        """(left, right, height) rectangles from the x axis."""
        for lo, hi, h in bars:
            top = self.sy(h)
            self.parts.append(f'<rect x="{self.sx(lo):.1f}" y="{top:.1f}" '
                              f'width="{max(self.sx(hi) - self.sx(lo) - 1, 1):.1f}" '
                              f'height="{self.sy(self.y0) - top:.1f}" fill="{color}"/>')

    def legend(self, items: list[tuple[str, str]], corner: str = "top") -> None:
        """Colour keys on a white card, in the top-left or bottom-right corner."""
        width = 18 + 6.8 * max((len(name) for name, _ in items), default=0)
        height = 14 * len(items) + 6
        x = PAD + 6 if corner == "top" else W - PAD / 2 - width - 6
        y0 = PAD / 2 + 6 if corner == "top" else H - PAD - height - 6
        self.parts.append(f'<rect x="{x}" y="{y0}" width="{width:.0f}" height="{height}" '
                          'fill="#fff" fill-opacity="0.85" stroke="#ddd"/>')
        for i, (name, color) in enumerate(items):
            y = y0 + 14 + 14 * i
            self.parts.append(f'<rect x="{x + 4}" y="{y - 9}" width="10" height="10" '
                              f'fill="{color}"/><text x="{x + 18}" y="{y}">'
                              f"{html.escape(name)}</text>")

    def svg(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
                f'viewBox="0 0 {W} {H}">' + "".join(self.parts) + "</svg>")
