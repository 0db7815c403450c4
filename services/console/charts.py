"""Inline SVG charts drawn on the server: no JavaScript charting library, nothing fetched from elsewhere, and
the page prints as it shows. Pure functions from figures to markup; every text is escaped."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 200, 36


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def balance_steps(
    opened: tuple[date, Decimal],
    interest: Sequence[tuple[date, Decimal]],
    recoveries: Sequence[tuple[date, Decimal]],
    write_offs: Sequence[tuple[date, Decimal]],
    today: date,
) -> list[tuple[date, Decimal]]:
    """The balance on each day something changed it, in business-date order: the principal determined, plus
    each interest period on its due date, minus each allocation (recoupment, refund, netting) and write-off on
    its effective date. The history's own ``balance`` column is the balance when each change was *recorded*
    (a back-dated interest period comes after a later recoupment there), so it cannot be drawn as a line."""
    moves = [(opened[0], opened[1])]
    moves += [(day, amount) for day, amount in interest]
    moves += [(day, -amount) for day, amount in (*recoveries, *write_offs)]
    points: list[tuple[date, Decimal]] = []
    running = Decimal("0.00")
    for day, amount in sorted(moves, key=lambda m: m[0]):
        running += amount
        if points and points[-1][0] == day:
            points[-1] = (day, running)
        else:
            points.append((day, running))
    if points and points[-1][0] < today:
        points.append((today, running))
    return points


def balance_over_time(points: Sequence[tuple[date, Decimal]], title: str = "Balance over time") -> Markup:
    """A step line of a receivable's balance after each change (the history's ``balance`` column)."""
    if not points:
        return Markup('<p class="muted">no balance history yet</p>')
    days = [p[0].toordinal() for p in points]
    values = [float(p[1]) for p in points]
    x0, x1 = min(days), max(days)
    top = max([*values, 0.01])
    coords: list[str] = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        x = _scale(day, x0, x1, PAD, WIDTH - PAD)
        y = _scale(value, 0, top, HEIGHT - PAD, PAD / 2)
        if i:
            coords.append(f"{x:.1f},{coords[-1].split(',')[1]}")
        coords.append(f"{x:.1f},{y:.1f}")
    labels = (
        f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">{escape(points[0][0].isoformat())}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" class="tick" text-anchor="end">'
        f"{escape(points[-1][0].isoformat())}</text>"
    )
    return Markup(  # noqa: S704 - every text in it is escaped; the rest are numbers we formatted
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="4" y="{PAD / 2 + 4}" class="tick">{top:,.2f}</text>'
        f'<polyline points="{" ".join(coords)}" class="line"/>{labels}</svg>'
    )


def grouped_bars(
    groups: Sequence[tuple[str, Sequence[Decimal]]], series: Sequence[str], title: str
) -> Markup:
    """Bars per group (a payer), one bar per series (30/60/90 days), with a legend."""
    if not groups:
        return Markup('<p class="muted">nothing expected</p>')
    top = max([float(v) for _, values in groups for v in values] + [0.01])
    slot = (WIDTH - 2 * PAD) / len(groups)
    bar = slot / (len(series) + 1)
    parts = []
    for g, (name, values) in enumerate(groups):
        for s, value in enumerate(values):
            h = _scale(float(value), 0, top, 0, HEIGHT - 2 * PAD)
            x = PAD + g * slot + s * bar + bar / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar * 0.9:.1f}" height="{h:.1f}" '
                f'class="bar s{s}"><title>{escape(name)} {escape(series[s])}: {value}</title></rect>'
            )
        parts.append(
            f'<text x="{PAD + g * slot + slot / 2:.1f}" y="{HEIGHT - 12}" class="tick" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    legend = "".join(
        f'<rect x="{WIDTH - PAD - 70}" y="{8 + 14 * s}" width="10" height="10" class="bar s{s}"/>'
        f'<text x="{WIDTH - PAD - 55}" y="{17 + 14 * s}" class="tick">{escape(label)}</text>'
        for s, label in enumerate(series)
    )
    return Markup(  # noqa: S704 - every text in it is escaped; the rest are numbers we formatted
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="4" y="{PAD - 4}" class="tick">{top:,.2f}</text>{"".join(parts)}{legend}</svg>'
    )
