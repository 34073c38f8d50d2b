"""Interference against model capacity: JointPair - Mono and JointAll - Mono per language and width.

The input is plain data, one study's per-seed figures per model width:
``{width: {variant: {language: [per-seed values]}}}`` (each width's part is
what `tables.cell_values` returns), values of one seed at the same
position in every list. For every width, language and joint variant the
difference ``joint - Mono`` is taken seed by seed and summarised as its mean
with the 95% t interval over seeds (`tf_metaling.estimates.seeds_estimate`).
With one seed, given the runs' example records (``{width: records}``, the
study's ``records[metric]``), a cell gets the same percentile bootstrap over
test examples as the verdicts (`verdicts.bootstrap_interval`): its CI then
leaves out seed-to-seed variation, and the caption says so.

The difference keeps the metric's sign: with a loss, a positive difference is
negative interference (the joint model is worse); with an accuracy, a
negative one is. The caption of the table and the plot's axis say which.

`capacity_table` writes the Markdown table (lines within 100 columns; widths
split over several tables when they do not fit) and `plot_capacity_curve`
the PNG (one panel per joint variant, one line per language, CI bars),
written atomically.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from tf_metaling.atomic_files import atomic_path
from tf_metaling.estimates import Estimate, seeds_estimate
from tf_metaling.study.tables import markdown_table, wrap
from tf_metaling.study.verdicts import bootstrap_interval

COMPARISONS = {"joint_pair": "JointPair-Mono", "joint_all": "JointAll-Mono"}
MAX_COLUMNS = 100


def interference_by_capacity(results: Mapping, baseline: str = "mono",
                             comparisons: Sequence[str] = tuple(COMPARISONS), records: Optional[Mapping] = None,
                             higher_is_better: bool = False) -> dict:
    """``{width: {variant: {language: Estimate of (variant - baseline)}}}``, widths ascending.

    Languages without figures of both the variant and the baseline at a width
    are left out of that width (a JointPair model has no pivot figure).

    Raises:
        ValueError: when a pair of per-seed lists has different lengths or a
            missing value (naming the width, variant and language).
    """
    table = {}
    for width in sorted(results, key=float):
        figures = results[width]
        reference = figures.get(baseline, {})
        for variant in comparisons:
            for code, values in figures.get(variant, {}).items():
                base = reference.get(code)
                if base is None:
                    continue
                if len(values) != len(base) or any(v is None for v in list(values) + list(base)):
                    raise ValueError(
                        f"capacity curve, width {width}: {variant}/{code} has per-seed values {list(values)} "
                        f"and {baseline}/{code} {list(base)}; they must be paired by seed."
                    )
                differences = np.asarray(values, dtype=float) - np.asarray(base, dtype=float)
                estimate = seeds_estimate(differences)
                if len(differences) == 1 and records and records.get(width):
                    estimate = _bootstrap_estimate(records[width], variant, baseline, code, float(differences[0]),
                                                   higher_is_better) or estimate
                table.setdefault(width, {}).setdefault(variant, {})[code] = estimate
    return table


def _bootstrap_estimate(records, variant, baseline, code, difference, higher_is_better) -> Optional[Estimate]:
    """One seed: ``variant - baseline`` with the bootstrap CI over test examples (None without records)."""
    interval = bootstrap_interval(records, variant, baseline, [code], higher_is_better)
    if interval is None or interval.low is None:
        return None
    # The verdicts' effect is "variant is worse" (for a higher-is-better metric, baseline - variant);
    # the table keeps the metric's sign.
    low, high = sorted((-interval.low, -interval.high) if higher_is_better else (interval.low, interval.high))
    return Estimate(difference, low, high, "bootstrap", interval.n, "examples")


def _cell(estimate: Optional[Estimate], digits: int) -> str:
    if estimate is None:
        return "-"
    text = f"{estimate.value:+.{digits}f}"
    if estimate.has_interval:
        text += f"±{(estimate.high - estimate.low) / 2:.{digits}f}"
        if estimate.includes(0.0):
            text += "*"
    return text


def capacity_table(results: Mapping, metric_name: str = "held-out MLM loss", higher_is_better: bool = False,
                   groups: Optional[Mapping[str, Sequence[str]]] = None, width_name: str = "d",
                   digits: int = 3, records: Optional[Mapping] = None) -> str:
    """The Markdown table(s): rows (language, comparison), one column per model width.

    Args:
        results: ``{width: {variant: {language: [per-seed values]}}}``.
        metric_name: what the values are, for the caption.
        higher_is_better: the metric's direction (says which sign is interference).
        groups: optional ``{"high": [...], "low": [...]}``: orders the rows
            and marks low-resource languages ``(L)``.
        width_name: the capacity's name in the column titles (``d`` = hidden size).
        digits: decimals of the cells.
        records: optional ``{width: records of the metric}``: one-seed cells get a
            bootstrap CI over test examples.
    """
    estimates = interference_by_capacity(results, records=records, higher_is_better=higher_is_better)
    if not estimates:
        return ""
    widths = list(estimates)
    low = set((groups or {}).get("low", []))
    order = list((groups or {}).get("high", [])) + list((groups or {}).get("low", []))
    seen = {code for per_width in estimates.values() for rows in per_width.values() for code in rows}
    languages = [c for c in order if c in seen] + sorted(seen - set(order))
    cells = [e for per_width in estimates.values() for rows in per_width.values() for e in rows.values()]
    seeds = sorted({e.n for e in cells if e.method != "bootstrap"})
    bootstrapped = any(e.method == "bootstrap" for e in cells)
    interference = "negative" if higher_is_better else "positive"
    if seeds:
        how = f"mean over seeds ± half-width of the 95% t interval ({'/'.join(map(str, seeds))} seeds)"
        if bootstrapped:
            how += "; one-seed cells: ± half-width of the 95% bootstrap interval over test examples"
    else:
        how = ("one seed: the difference ± half-width of the 95% bootstrap interval over test examples "
               "(seed-to-seed variation not included)")
    caption = (
        f"Interference against capacity: joint variant minus Mono in {metric_name}, per language; {how}. "
        f"{interference.capitalize()} = the joint model is worse (negative interference)."
    )
    notes = ["* the CI includes 0: no difference detected."]
    if low & seen:
        notes.append("(L) low-resource language.")
    if 1 in seeds:
        notes.append("A cell from one seed without example records has no CI.")
    rows = []
    for code in languages:
        for variant, title in COMPARISONS.items():
            cells = [_cell(estimates[w].get(variant, {}).get(code), digits) for w in widths]
            if all(cell == "-" for cell in cells):
                continue
            rows.append([code + ("(L)" if code in low else ""), title] + cells)
    header = ["lang", "difference"] + [f"{width_name}={w}" for w in widths]
    tables, first = [], 0
    while first < len(widths):  # as many width columns per table as fit in 100 columns
        last = first + 1
        while last < len(widths) and _line_width(header, rows, first, last + 1) <= MAX_COLUMNS:
            last += 1
        tables.append("\n".join(markdown_table(*_columns_of(header, rows, first, last))))
        first = last
    return "\n\n".join([wrap(caption, MAX_COLUMNS)] + tables + ["\n".join(wrap(n, MAX_COLUMNS) for n in notes)])


def _columns_of(header, rows, first, last) -> tuple:
    """The header and rows with the width columns ``first:last`` only (the first two always)."""
    keep = lambda row: row[:2] + row[2 + first: 2 + last]  # noqa: E731
    return keep(header), [keep(row) for row in rows]


def _line_width(header, rows, first, last) -> int:
    return len(markdown_table(*_columns_of(header, rows, first, last))[0])


def plot_capacity_curve(results: Mapping, path: str, metric_name: str = "held-out MLM loss",
                        higher_is_better: bool = False, width_name: str = "hidden size d",
                        records: Optional[Mapping] = None) -> str:
    """``variant - Mono`` against width, a line per language, 95% CI bars; a panel per variant trained.

    Writes the PNG atomically at `path` and returns `path`.
    """
    estimates = interference_by_capacity(results, records=records, higher_is_better=higher_is_better)
    if not estimates:
        raise ValueError(
            f"plot_capacity_curve: no width has both a joint variant and Mono to draw into {path}."
        )
    widths = [float(w) for w in estimates]
    # A panel per comparison with figures: with two languages (the control) JointPair is JointAll
    # and is not trained, so its panel would be empty.
    drawn = {variant: title for variant, title in COMPARISONS.items()
             if any(per_width.get(variant) for per_width in estimates.values())}
    figure = Figure(figsize=(5.0 * len(drawn) + 0.5, 4.0), layout="constrained")
    panels = figure.subplots(1, len(drawn), sharey=True, squeeze=False)[0]
    for axes, (variant, title) in zip(panels, drawn.items()):
        languages = sorted({c for per_width in estimates.values() for c in per_width.get(variant, {})})
        for code in languages:
            points = [(x, per_width.get(variant, {}).get(code))
                      for x, per_width in zip(widths, estimates.values())]
            points = [(x, e) for x, e in points if e is not None]
            xs = [x for x, _ in points]
            ys = [e.value for _, e in points]
            errors = np.array([[e.value - e.low, e.high - e.value] if e.has_interval else [0.0, 0.0]
                               for _, e in points]).T
            axes.errorbar(xs, ys, yerr=errors, marker="o", markersize=4, capsize=3, linewidth=1.2, label=code)
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.set_xscale("log", base=2)
        axes.set_xticks(widths, labels=[f"{w:g}" for w in widths])
        axes.set_xlabel(width_name)
        axes.set_title(title, fontsize=10)
        axes.grid(True, alpha=0.3)
        if languages:
            axes.legend(fontsize=7)
    worse = "lower" if higher_is_better else "higher"
    panels[0].set_ylabel(f"difference in {metric_name}\n({worse} = joint model worse)")
    one_seed = all(e.method == "bootstrap" for w in estimates.values() for rows in w.values() for e in rows.values())
    figure.suptitle("Interference against capacity (" + ("one seed, 95% bootstrap interval over test examples"
                    if one_seed else "mean over seeds, 95% t interval") + ")", fontsize=11)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    return path
