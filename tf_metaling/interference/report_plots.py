"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

Figures are made with `matplotlib.figure.Figure` (never `pyplot`), so
drawing a report neither needs a display nor changes the caller's matplotlib
backend or global state. Every function writes one PNG to the path given.

Colours: similarities and overlaps use blue for agreement; in the variant
chart red means worse than the baseline and blue better, whatever the
metric's direction.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

DPI = 110


def _save(figure: Figure, path: str) -> str:
    figure.savefig(path, dpi=DPI, bbox_inches="tight", format="png")
    return path


def _annotated_heatmap(axes, matrix, row_labels, column_labels, vmin, vmax, cmap, fmt="{:.2f}", fontsize=8):
    matrix = np.asarray(matrix, dtype=np.float64)
    masked = np.ma.masked_invalid(matrix)
    image = axes.imshow(masked, vmin=vmin, vmax=vmax, cmap=cmap)
    axes.set_xticks(range(len(column_labels)), labels=column_labels, rotation=45, ha="right", fontsize=fontsize)
    axes.set_yticks(range(len(row_labels)), labels=row_labels, fontsize=fontsize)
    if matrix.size <= 400:  # numbers stay readable up to about 20 x 20
        span = (vmax - vmin) or 1.0
        for (i, j), value in np.ndenumerate(matrix):
            text = "n/a" if not np.isfinite(value) else fmt.format(value)
            strong = np.isfinite(value) and abs((value - vmin) / span - 0.5) > 0.3
            axes.text(j, i, text, ha="center", va="center", fontsize=fontsize - 1,
                      color="white" if strong else "black")
    return image


def plot_similarity_heatmap(matrix, languages, path, title="Gradient cosine similarity (all shared parameters)"):
    """One L x L similarity heatmap in [-1, 1]."""
    size = max(4.0, 0.6 * len(languages) + 2.0)
    figure = Figure(figsize=(size, size * 0.85))
    axes = figure.add_subplot()
    image = _annotated_heatmap(axes, matrix, languages, languages, -1.0, 1.0, "RdBu")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    return _save(figure, path)


def plot_heatmap_grid(matrices, titles, languages, path, suptitle, vmin=-1.0, vmax=1.0, cmap="RdBu",
                      label="cosine similarity"):
    """A grid of small L x L heatmaps, one per layer group, with one shared colour bar."""
    count = len(matrices)
    columns = min(count, 3 if count <= 9 else 4)
    rows = math.ceil(count / columns)
    cell = max(2.6, 0.35 * len(languages) + 1.2)
    figure = Figure(figsize=(cell * columns + 1.0, cell * rows + 0.6), layout="constrained")
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    image = None
    for k, axes in enumerate(axes_grid.ravel()):
        if k >= count:
            axes.set_visible(False)
            continue
        image = _annotated_heatmap(axes, matrices[k], languages, languages, vmin, vmax, cmap, fontsize=7)
        axes.set_title(titles[k], fontsize=8)
    figure.suptitle(suptitle, fontsize=11)
    if image is not None:
        figure.colorbar(image, ax=axes_grid, shrink=0.6, label=label)
    return _save(figure, path)


def plot_similarity_over_training(steps, pair_series, mean_series, group_series, path):
    """Two panels: selected pairs' overall similarity, and each group's mean off-diagonal, over steps.

    Args:
        steps: ``[T]`` training steps.
        pair_series: ``{"a-b": [T] values}``.
        mean_series: ``[T]`` mean off-diagonal overall.
        group_series: ``{group: [T] mean off-diagonal}``.
    """
    figure = Figure(figsize=(12, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    for label, values in pair_series.items():
        left.plot(steps, values, marker="o", markersize=3, linewidth=1.2, label=label)
    left.plot(steps, mean_series, color="black", linestyle="--", linewidth=1.5, label="mean of all pairs")
    left.axhline(0.0, color="grey", linewidth=0.8)
    left.set_xlabel("training step")
    left.set_ylabel("cosine similarity (all shared parameters)")
    left.set_title("Selected language pairs", fontsize=10)
    left.legend(fontsize=7, ncol=2)
    # Many groups as lines are unreadable: one row per group, one column per measurement.
    names = list(group_series)
    grid = np.asarray([group_series[name] for name in names], dtype=np.float64).reshape(len(names), len(steps))
    finite = np.abs(grid[np.isfinite(grid)])
    limit = float(max(finite.max(), 0.05)) if finite.size else 1.0
    image = right.imshow(np.ma.masked_invalid(grid), vmin=-limit, vmax=limit, cmap="RdBu", aspect="auto",
                         interpolation="nearest")
    right.set_yticks(range(len(names)), labels=names, fontsize=7)
    ticks = sorted(set(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int)))
    right.set_xticks(ticks, labels=[str(steps[i]) for i in ticks], fontsize=7)
    right.set_xlabel("training step")
    right.set_title("Mean similarity over language pairs, per layer group", fontsize=10)
    figure.colorbar(image, ax=right, shrink=0.8, label="mean cosine similarity")
    return _save(figure, path)


def plot_mask_overlap(overlap, chance, languages, unique_share_by_group, path, keep_fraction):
    """Overall mask-overlap heatmap beside a bar chart of each group's one-language share."""
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1.0, 1.2])
    image = _annotated_heatmap(left, overlap, languages, languages, 0.0, 1.0, "Blues")
    chance_values = np.asarray(chance)[~np.eye(len(languages), dtype=bool)]
    chance_text = f"{np.nanmean(chance_values):.3f}" if chance_values.size else "n/a"
    left.set_title(f"Jaccard overlap of sub-networks (top {keep_fraction:.0%} per group)\n"
                   f"random masks of the same sizes: about {chance_text}", fontsize=9)
    figure.colorbar(image, ax=left, shrink=0.8, label="Jaccard overlap")
    names = list(unique_share_by_group)
    values = [unique_share_by_group[n] for n in names]
    positions = np.arange(len(names))
    right.barh(positions, [0 if v is None or not np.isfinite(v) else v for v in values], color="tab:orange")
    right.set_yticks(positions, labels=names, fontsize=7)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("share of kept weights used by one language only")
    right.set_title("Language-specific weights per layer group", fontsize=9)
    return _save(figure, path)


def plot_variant_deltas(deltas, path):
    """Heatmap variants x languages of the percent change against the baseline (red = worse)."""
    harm = deltas.harm
    labels = []
    for code, resource in zip(deltas.languages, deltas.resource):
        labels.append(f"{code} ({'H' if resource == 'high' else 'L' if resource == 'low' else '-'})")
    finite = np.abs(harm[np.isfinite(harm)])
    limit = float(max(finite.max(), 1.0)) if finite.size else 1.0
    width = max(6.0, 0.8 * len(labels) + 3.0)
    figure = Figure(figsize=(width, 1.0 + 0.55 * max(len(deltas.variants), 1) + 1.2), layout="constrained")
    axes = figure.add_subplot()
    # Colour by harm (positive = worse), but print the metric's signed relative change.
    image = axes.imshow(np.ma.masked_invalid(harm), vmin=-limit, vmax=limit, cmap="RdBu_r", aspect="auto")
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(deltas.variants)), labels=list(deltas.variants), fontsize=8)
    for (i, j), value in np.ndenumerate(deltas.relative):
        strong = np.isfinite(harm[i, j]) and abs(harm[i, j]) > 0.6 * limit
        axes.text(j, i, "n/a" if not np.isfinite(value) else f"{value:+.1f}%", ha="center", va="center",
                  fontsize=7, color="white" if strong else "black")
    # A line between the high- and the low-resource languages when they are contiguous.
    for j in range(1, len(deltas.resource)):
        if deltas.resource[j] != deltas.resource[j - 1]:
            axes.axvline(j - 0.5, color="black", linewidth=1.5)
    direction = "lower" if deltas.lower_is_better else "higher"
    axes.set_title(
        f"{deltas.metric}: change against {deltas.baseline} ({direction} is better; red = worse)\n"
        "H = high-resource, L = low-resource",
        fontsize=9,
    )
    figure.colorbar(image, ax=axes, shrink=0.8, label="% worse than baseline (negative: better)")
    return _save(figure, path)
