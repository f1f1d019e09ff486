"""The weekly trend as an inline SVG drawn on the server: no script, no CDN, nothing the iframe's CSP must allow.

Bars per week: missed calls (grey), texted (blue), booked (green). Colours are presentation attributes, not
style attributes, so the CSP's style-src does not apply. The chart has a title and a description for screen
readers; the numbers themselves are in the table under it and in the CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from integration.report.lead_leak import Week

__all__ = ["trend_svg"]

WIDTH, HEIGHT = 900, 260
_LEFT, _BOTTOM, _TOP = 44, 34, 12
_SERIES = (("missed", "#cbd5e1"), ("texted", "#2563eb"), ("booked", "#0f7a4a"))


def _nice_max(value: int) -> int:
    # Even tops, so the middle grid line has a whole number.
    for step in (2, 4, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if value <= step:
            return step
    return value


def trend_svg(weeks: Sequence[Week]) -> Markup:
    top = _nice_max(max([w.funnel.missed for w in weeks] + [1]))
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _BOTTOM - _TOP
    slot = plot_w / max(1, len(weeks))
    bar = max(1.0, slot * 0.8 / len(_SERIES))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-labelledby="trend-title trend-desc">',
             '<title id="trend-title">Missed calls, texts and bookings per week</title>',
             f'<desc id="trend-desc">{escape(_describe(weeks))}</desc>']
    for fraction in (0, 0.5, 1):
        y = _TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5f6b7a">'
                     f'{int(top * fraction)}</text>')
    label_every = max(1, len(weeks) // 12)
    for index, week in enumerate(weeks):
        x0 = _LEFT + index * slot + slot * 0.1
        for offset, (name, colour) in enumerate(_SERIES):
            value = getattr(week.funnel, name)
            h = plot_h * value / top
            parts.append(f'<rect x="{x0 + offset * bar:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{escape(_week_label(week))}: {value} {name}'
                         f'</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x0 + slot * 0.4:.1f}" y="{HEIGHT - 14}" text-anchor="middle" font-size="11" '
                         f'fill="#5f6b7a">{escape(_week_label(week))}</text>')
    parts.append("</svg>")
    # Every value above is a number we formatted or text passed through escape().
    return Markup("".join(parts))  # noqa: S704


def _week_label(week: Week) -> str:
    return f"{week.starts.day} {week.starts:%b}"


def _describe(weeks: Sequence[Week]) -> str:
    if not weeks:
        return "No weeks to show."
    busiest = max(weeks, key=lambda w: w.funnel.missed)
    return (f"{len(weeks)} weeks from {_week_label(weeks[0])}. The busiest week, starting {_week_label(busiest)}, "
            f"had {busiest.funnel.missed} missed calls, {busiest.funnel.texted} texted and "
            f"{busiest.funnel.booked} booked.")
