"""The Pareto front of quality against memory, drawn only through steps larger than the noise."""
from __future__ import annotations

import pandas as pd

Z95 = 1.959964  # two-sided 95% quantile of the normal distribution

HOW = ("The front (red steps) runs from the smallest model towards larger ones; a point joins it only if it "
       "beats the last point on the front by more than the 95% noise of their difference "
       "(the two half-widths added in quadrature), so a step in the front is a finding.")


def pareto_front(points: pd.DataFrame, x: str, y: str, higher_is_better: bool,
                 half_width: str | None = None, beats=None) -> pd.DataFrame:
    """Points, by increasing x, that beat the last front point's y by more than the 95% half-width of
    the difference (sqrt(h1² + h2²) from the `half_width` column, each a 95% half-width); without a
    half-width column, any strict improvement counts. beats(row, last), where given, decides instead
    for the pairs it can test (True or False) and leaves the others to the half-widths (None): a
    paired test of two variants over the same items is sharper than the two intervals."""
    df = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, not higher_is_better])
    front, last = [], None
    for _, row in df.iterrows():
        if last is None:
            front.append(row)
            last = row
            continue
        verdict = beats(row, last) if beats is not None else None
        if verdict is not None:
            if verdict:
                front.append(row)
                last = row
            continue
        gain = row[y] - last[y] if higher_is_better else last[y] - row[y]
        noise = 0.0
        if half_width is not None:
            h1, h2 = row.get(half_width), last.get(half_width)
            noise = (float(h1 if pd.notna(h1) else 0) ** 2 + float(h2 if pd.notna(h2) else 0) ** 2) ** 0.5
        if gain > noise:
            front.append(row)
            last = row
    return pd.DataFrame(front)
