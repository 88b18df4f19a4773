"""Point labels that do not overlap: each label goes to the first of a ring of offsets around its
point where its box, measured by the renderer, touches no other label, marker, legend or the axes'
edge. A point whose name finds no place gets a number instead, named in a key beside the panel that
lists only such points. Call `place` last: it lays the figure out, and the offsets hold only for that
layout."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import cbook
from matplotlib.collections import LineCollection
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from quantbench.report import style

STEPS = {"steps-post": cbook.pts_to_poststep, "steps-pre": cbook.pts_to_prestep, "steps": cbook.pts_to_prestep,
         "steps-mid": cbook.pts_to_midstep}
RADII_PT = (3, 7, 12, 18, 26, 36)   # offsets tried, nearest first
FAR_RADII_PT = (48, 64, 84)         # a crowded panel's last resort, with a leader line
LEADER_FROM_PT = 12                 # from this offset on a thin line joins label and point
ANGLES_DEG = (0, 180, 90, 270, 30, 150, 210, 330, 60, 120, 240, 300)
MARKER_PAD_PX = 4                   # a marker's half-width when nothing else says it
LINE_PAD_PX = 2                     # half-width of the strip kept free around a line


@dataclass
class Point:
    x: float
    y: float
    name: str
    look: style.Look


def _boxes_overlap(a: Bbox, b: Bbox, pad: float = 1.0) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return inner.x0 >= outer.x0 and inner.x1 <= outer.x1 and inner.y0 >= outer.y0 and inner.y1 <= outer.y1


def _marker_box(ax, p: Point) -> Bbox:
    x, y = ax.transData.transform((p.x, p.y))
    r = MARKER_PAD_PX * ax.figure.dpi / 72
    return Bbox.from_extents(x - r, y - r, x + r, y + r)


def _paths(ax) -> list:
    """Every drawn line in display coordinates: lines (fronts, curves) and error bars."""
    # each line through its own transform: a reference line (axhline) is in axes units along x
    paths = [line.get_transform().transform(_drawn_xy(line)) for line in ax.lines if line.get_visible()]
    for coll in ax.collections:
        if isinstance(coll, LineCollection) and coll.get_visible():
            paths += [ax.transData.transform(seg) for seg in coll.get_segments()]
    return paths


def _drawn_xy(line):
    """A line's vertices as drawn: a step line (a front) runs along its steps, not between its data points."""
    xy = line.get_xydata()
    step = STEPS.get(line.get_drawstyle())
    if step is None or len(xy) < 2:
        return xy
    return np.column_stack(step(xy[:, 0], xy[:, 1]))


def _line_boxes(ax) -> list[Bbox]:
    """Small boxes along every drawn line, so that labels keep off them."""
    boxes, r = [], LINE_PAD_PX
    for xy in _paths(ax):
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            n = max(int(math.hypot(x1 - x0, y1 - y0) / r), 1)
            boxes += [Bbox.from_extents(x - r, y - r, x + r, y + r)
                      for x, y in ((x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n + 1))]
    return boxes


def _legend_boxes(fig, renderer) -> list[Bbox]:
    return [lg.get_window_extent(renderer) for lg in fig.findobj(Legend) if lg.get_visible()]


def _annotate(ax, p: Point, text: str, radius: float, angle: float):
    dx, dy = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
    ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
    va = "bottom" if dy > 0.5 else "top" if dy < -0.5 else "center"
    arrow = dict(arrowstyle="-", lw=0.5, color=style.NEUTRAL, shrinkA=0, shrinkB=3) \
        if radius >= LEADER_FROM_PT else None
    label = ax.annotate(text, (p.x, p.y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                        fontsize=style.FONT["point"], arrowprops=arrow)
    label.set_gid("point-label")
    return label


def _try(ax, p: Point, text: str, taken: list[Bbox], renderer, lines: list[Bbox] = (), radii=RADII_PT):
    frame = ax.get_window_extent(renderer)
    for radius in radii:
        for angle in ANGLES_DEG:
            label = _annotate(ax, p, text, radius, angle)
            box = label.get_window_extent(renderer)
            if _inside(box, frame) and not any(_boxes_overlap(box, t) for t in [*taken, *lines]):
                taken.append(box)
                return label
            label.remove()
    return None


def _place_panel(ax, points: list[Point], texts: list[str], renderer, fixed: list[Bbox],
                 others: list[Point] = (), far=FAR_RADII_PT, force: bool = False) -> list[Point]:
    """Label each point with its text; returns the points that found no free place. With `force`
    (a key's numbers) every point gets its text: a number the key lists but the panel does not
    show would name no point."""
    markers = [_marker_box(ax, p) for p in [*points, *others]]
    taken = fixed + markers
    lines = _line_boxes(ax)
    missed = []
    for p, text in zip(points, texts):
        # off the lines where possible, with a leader line if need be (a name printed over a front or
        # an error bar is hard to read); across a line rather than not at all
        if _try(ax, p, text, taken, renderer, lines) is None \
                and _try(ax, p, text, taken, renderer, lines, radii=far) is None \
                and _try(ax, p, text, taken, renderer) is None \
                and _try(ax, p, text, taken, renderer, radii=far) is None:
            if not force:
                # no free place: the caller numbers the point instead (`place`) or says so (`name`)
                missed.append(p)
                continue
            # over a marker rather than not at all; over another text only if nothing else is left
            texts_taken = fixed + taken[len(fixed) + len(markers):]
            label = _try(ax, p, text, texts_taken, renderer, radii=(*RADII_PT, *far)) \
                or _try(ax, p, text, [], renderer, radii=(*RADII_PT, *far)) \
                or _annotate(ax, p, text, RADII_PT[0], ANGLES_DEG[0])
            taken.append(label.get_window_extent(renderer))
    return missed


def _clear(ax) -> None:
    for t in [t for t in ax.texts if t.get_gid() == "point-label"]:
        t.remove()


def _key(fig, numbers: dict[str, int], looks: dict[str, style.Look]) -> Legend:
    handles = [Line2D([], [], ls="", marker=looks[name].marker, color=looks[name].color,
                      markeredgecolor=looks[name].edge, label=f"{n}  {name}") for name, n in numbers.items()]
    # more than a panel's height of entries would run off the figure: a second column
    return fig.legend(handles=handles, loc="outside right upper", fontsize=style.FONT["legend"], frameon=False,
                      handletextpad=0.3, ncols=1 if len(handles) <= 16 else 2)


def _layout(fig):
    """Lay the figure out once and keep it: offsets measured now must hold when it is saved."""
    fig.set_layout_engine("constrained")
    fig.canvas.draw()
    fig.set_layout_engine("none")
    return fig.canvas.get_renderer()


def place(fig, panels: list[tuple[object, list[Point]]]) -> None:
    """Label every panel's points by name; the points whose name finds no place get a number instead
    (a variant keeps its number across panels), named in a key beside the figure that lists only
    them, so that a reader looks up a few crowded points, not every point. Every point ends up with
    its name or its number: the key narrows the panels and its numbers take room, so a name that fit
    before the key may no longer fit beside it; such a point is numbered too and the panels placed
    again, until every name left finds its place (the numbered set only grows, so this ends)."""
    numbered: set[str] = set()
    key = None
    while True:
        numbers, looks = {}, {}
        for _, points in panels:
            for p in points:
                if p.name in numbered:
                    numbers.setdefault(p.name, len(numbers) + 1)
                    looks.setdefault(p.name, p.look)
        if numbers:
            key = _key(fig, numbers, looks)
        renderer = _layout(fig)
        fixed = _legend_boxes(fig, renderer)
        missed = []
        for ax, points in panels:
            # the numbers first: short, they fit where names did not; then the names around them
            first = [p for p in points if p.name in numbers]
            rest = [p for p in points if p.name not in numbers]
            _place_panel(ax, first, [str(numbers[p.name]) for p in first], renderer, fixed, rest, force=True)
            fixed = fixed + [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "point-label"]
            missed += [p.name for p in _place_panel(ax, rest, [p.name for p in rest], renderer, fixed, first)]
        if not missed:
            return
        numbered |= set(missed)
        for ax, _ in panels:
            _clear(ax)
        if key is not None:
            key.remove()


def name(fig, panels: list[tuple[object, list[Point], list[Point]]], far=FAR_RADII_PT) -> list[str]:
    """Label by name the chosen points of each panel (ax, chosen, others), keeping clear of every
    marker, the others' included; `far` are the leader-line offsets tried last. No numbered key: the
    others stay unlabelled (their marker and colour name the family). Returns the chosen names that
    found no free place."""
    renderer = _layout(fig)
    fixed = _legend_boxes(fig, renderer)
    missed = []
    for ax, chosen, others in panels:
        for p in chosen:
            if _place_panel(ax, [p], [p.name], renderer, fixed, [q for q in [*chosen, *others] if q is not p], far):
                missed.append(p.name)
            fixed = fixed + [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "point-label"]
    return missed
