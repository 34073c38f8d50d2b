"""The interference report: a directory of JSON, Markdown and PNG figures.

`write_report` takes whatever was measured — gradient similarities of one
model state, the probe's log over training, the language sub-networks, and a
results table of the variants — and writes::

    output_dir/
      report.md                         read this: summary, figures, tables, how to read them
      report.json                       every number, for scripts
      gradient_similarity.png           overall L x L gradient cosine heatmap
      gradient_similarity_by_group.png  one heatmap per layer group
      similarity_over_training.png      selected pairs and per-group means over steps
      mask_overlap.png                  Jaccard overlap of sub-networks + one-language share per group
      mask_overlap_by_group.png         one overlap heatmap per layer group
      variant_deltas.png                each variant's per-language change against the baseline

A figure whose input was not given is left out, and the Markdown says so.
The directory is written whole or not at all: everything goes to a temporary
sibling directory that then replaces `output_dir`.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from tf_metaling.atomic_files import atomic_directory
from tf_metaling.interference import report_plots
from tf_metaling.interference.gradient_probe import default_pairs
from tf_metaling.interference.gradient_similarity import GradientSimilarity, mean_off_diagonal
from tf_metaling.interference.language_subnetworks import LanguageSubnetworks
from tf_metaling.interference.similarity_log import read_similarity_log
from tf_metaling.interference.variant_deltas import HIGH, LOW, VariantDeltas, variant_deltas

REPORT_MARKDOWN = "report.md"
REPORT_JSON = "report.json"
SIMILARITY_PNG = "gradient_similarity.png"
SIMILARITY_BY_GROUP_PNG = "gradient_similarity_by_group.png"
OVER_TRAINING_PNG = "similarity_over_training.png"
OVERLAP_PNG = "mask_overlap.png"
OVERLAP_BY_GROUP_PNG = "mask_overlap_by_group.png"
DELTAS_PNG = "variant_deltas.png"
MAX_TRAINING_ROWS = 12  # rows of the over-training table (evenly spaced records)


def _number(value, fmt="{:.3f}") -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return fmt.format(value)


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _matrix_table(matrix, languages, fmt="{:.2f}") -> str:
    return _table([""] + list(languages), [[code] + [_number(v, fmt) for v in row] for code, row in zip(languages, matrix)])


def _extreme_pairs(matrix, languages):
    """(lowest pair, value), (highest pair, value) off the diagonal, ignoring NaN."""
    best = worst = None
    for i in range(len(languages)):
        for j in range(i + 1, len(languages)):
            value = matrix[i, j]
            if not np.isfinite(value):
                continue
            if worst is None or value < worst[1]:
                worst = ((languages[i], languages[j]), float(value))
            if best is None or value > best[1]:
                best = ((languages[i], languages[j]), float(value))
    return worst, best


# ---------------------------------------------------------------------- sections
def _similarity_section(similarity: GradientSimilarity, directory, files, summary, data):
    languages = similarity.languages
    report_plots.plot_similarity_heatmap(similarity.overall, languages, os.path.join(directory, SIMILARITY_PNG))
    report_plots.plot_heatmap_grid(
        list(similarity.by_group), list(similarity.groups), languages,
        os.path.join(directory, SIMILARITY_BY_GROUP_PNG), "Gradient cosine similarity per layer group",
    )
    files += [SIMILARITY_PNG, SIMILARITY_BY_GROUP_PNG]
    data["gradient_similarity"] = similarity.to_json()
    overall_mean = similarity.mean_off_diagonal()
    worst, best = _extreme_pairs(similarity.overall, languages)
    group_means = [(g, similarity.mean_off_diagonal(g)) for g in similarity.groups]
    finite_groups = sorted((m, g) for g, m in group_means if np.isfinite(m))
    negative = int(np.sum(np.triu(similarity.overall < 0, k=1)))
    total_pairs = len(languages) * (len(languages) - 1) // 2
    step = f" at step {similarity.step}" if similarity.step is not None else ""
    summary.append(
        f"**Gradient conflict{step}:** the mean similarity between languages' gradients on the shared "
        f"parameters is {_number(overall_mean)}; {negative} of {total_pairs} pairs are negative (conflicting)."
        + (f" Most conflicting pair: {worst[0][0]}-{worst[0][1]} ({worst[1]:+.3f}); most aligned: "
           f"{best[0][0]}-{best[0][1]} ({best[1]:+.3f})." if worst else "")
        + (f" Lowest-agreement layer groups: {', '.join(f'{g} ({m:+.3f})' for m, g in finite_groups[:3])}."
           if finite_groups else "")
    )
    rows = []
    for g, name in enumerate(similarity.groups):
        group_worst, _ = _extreme_pairs(similarity.by_group[g], languages)
        rows.append([
            name, f"{similarity.group_sizes[g]:,}", _number(mean_off_diagonal(similarity.by_group[g])),
            f"{group_worst[0][0]}-{group_worst[0][1]} ({group_worst[1]:+.3f})" if group_worst else "n/a",
        ])
    losses = ", ".join(f"{code} {loss:.3f}" for code, loss in zip(languages, similarity.losses))
    return "\n\n".join([
        "## 1. Gradient conflict between languages",
        "Each language's held-out batch gives a gradient of its loss with respect to the shared "
        "parameters (language-specific layers excluded). Each cell is the cosine similarity of two "
        "languages' gradients: **+1** (blue) means a step that helps one helps the other, **0** that they "
        "are unrelated, **below 0** (red) that they pull the shared weights in opposite directions — the "
        "paper's negative interference. The diagonal is 1 by definition.",
        f"![Gradient similarity]({SIMILARITY_PNG})",
        _matrix_table(similarity.overall, languages),
        f"Losses on the batches used: {losses}.",
        "### Per layer group",
        "The same measurement restricted to one part of the network. Groups where languages disagree "
        "are where shared capacity is contested.",
        f"![Gradient similarity per layer group]({SIMILARITY_BY_GROUP_PNG})",
        _table(["layer group", "parameters", "mean similarity", "most conflicting pair"], rows),
    ])


def _training_section(history, pairs, directory, files, summary, data):
    steps = [record.step for record in history]
    languages = history[0].languages
    pairs = [tuple(p) for p in (pairs or default_pairs(languages))]
    pair_series = {f"{a}-{b}": [record.pair(a, b) for record in history] for a, b in pairs}
    mean_series = [record.mean_off_diagonal() for record in history]
    groups = [g for g in history[-1].groups]
    group_series = {
        g: [record.mean_off_diagonal(g) if g in record.groups else np.nan for record in history] for g in groups
    }
    report_plots.plot_similarity_over_training(steps, pair_series, mean_series, group_series,
                                               os.path.join(directory, OVER_TRAINING_PNG))
    files.append(OVER_TRAINING_PNG)
    data["similarity_over_training"] = {
        "steps": steps,
        "mean_off_diagonal": [None if not np.isfinite(v) else float(v) for v in mean_series],
        "pairs": {k: [None if not np.isfinite(v) else float(v) for v in vs] for k, vs in pair_series.items()},
        "groups": {k: [None if not np.isfinite(v) else float(v) for v in vs] for k, vs in group_series.items()},
    }
    if len(history) == 1:
        summary.append(
            f"**Over training:** one probe measurement (step {steps[0]}; mean similarity "
            f"{_number(mean_series[0])}): no trend can be read from it; probe more often "
            "(trainer.probe_interval) or train longer."
        )
    else:
        summary.append(
            f"**Over training:** {len(history)} probe measurements from step {steps[0]} to {steps[-1]}; the "
            f"mean similarity went from {_number(mean_series[0])} to {_number(mean_series[-1])}."
        )
    chosen = sorted(set(np.linspace(0, len(history) - 1, min(len(history), MAX_TRAINING_ROWS)).round().astype(int)))
    rows = [[steps[i], _number(mean_series[i])] + [_number(pair_series[k][i]) for k in pair_series] for i in chosen]
    note = "" if len(chosen) == len(history) else f" ({len(chosen)} of {len(history)} measurements, evenly spaced)"
    return "\n\n".join([
        "## 2. Gradient similarity over training",
        "The probe measured the similarities every few training steps on fixed held-out batches, so the "
        "curves show how the model's languages come to agree or conflict as it trains. Left: selected "
        "pairs and the mean over all pairs; right: the mean over pairs for each layer group (one row per "
        "group, blue = agreement, red = conflict).",
        f"![Similarity over training]({OVER_TRAINING_PNG})",
        _table(["step", "mean"] + list(pair_series), rows) + note,
    ])


def _subnetwork_section(subnetworks: LanguageSubnetworks, directory, files, summary, data):
    languages = subnetworks.languages
    unique_by_group = {g: subnetworks.unique_share(g) for g in subnetworks.groups}
    overall = subnetworks.overlap()
    chance = subnetworks.chance_overlap()
    report_plots.plot_mask_overlap(overall, chance, languages, unique_by_group, os.path.join(directory, OVERLAP_PNG),
                                   subnetworks.keep_fraction)
    report_plots.plot_heatmap_grid(
        [subnetworks.overlap(g) for g in subnetworks.groups], list(subnetworks.groups), languages,
        os.path.join(directory, OVERLAP_BY_GROUP_PNG), "Jaccard overlap of language sub-networks per layer group",
        vmin=0.0, vmax=1.0, cmap="Blues", label="Jaccard overlap",
    )
    files += [OVERLAP_PNG, OVERLAP_BY_GROUP_PNG]
    data["language_subnetworks"] = subnetworks.to_json()
    off = ~np.eye(len(languages), dtype=bool)
    mean_overlap, mean_chance = float(np.nanmean(overall[off])), float(np.nanmean(chance[off]))
    top_group = max(((v, g) for g, v in unique_by_group.items() if np.isfinite(v)), default=None)
    summary.append(
        f"**Language-specific parameters:** keeping the top {subnetworks.keep_fraction:.0%} of each layer group "
        f"per language, two languages' sub-networks overlap by {mean_overlap:.3f} on average (Jaccard; random "
        f"masks of the same sizes: {mean_chance:.3f}); {_number(subnetworks.unique_share(), '{:.1%}')} of the "
        "kept weights are used by one language only"
        + (f", most in {top_group[1]} ({top_group[0]:.1%})." if top_group else ".")
    )
    rows = []
    for g in subnetworks.groups:
        matrix, random = subnetworks.overlap(g), subnetworks.chance_overlap(g)
        rows.append([g, f"{subnetworks.group_sizes[subnetworks.groups.index(g)]:,}",
                     _number(float(np.nanmean(matrix[off]))), _number(float(np.nanmean(random[off]))),
                     _number(unique_by_group[g], "{:.1%}")])
    by_language = subnetworks.unique_share_by_language()
    kept = subnetworks.kept()
    return "\n\n".join([
        "## 3. Language-specific parameters inside the shared model",
        f"Every shared weight w gets an importance score for each language, |w x dL/dw| summed over that "
        f"language's held-out batches; a language's sub-network keeps the top {subnetworks.keep_fraction:.0%} "
        "of each layer group by that score. If the languages used the same weights, the overlap (Jaccard: "
        "shared kept weights / weights kept by either) would be 1; random masks would overlap at the chance "
        "level. Weights kept by one language only are the language-specific parameters the paper points "
        "to as a cause of interference.",
        f"![Mask overlap]({OVERLAP_PNG})",
        _matrix_table(overall, languages),
        _table(["language", "kept weights", "kept by this language only"],
               [[code, f"{int(k):,}", _number(share, "{:.1%}")] for code, k, share in zip(languages, kept, by_language)]),
        "### Per layer group",
        f"![Mask overlap per layer group]({OVERLAP_BY_GROUP_PNG})",
        _table(["layer group", "parameters", "mean overlap", "chance overlap", "kept by one language only"], rows),
    ])


def _deltas_section(deltas: VariantDeltas, directory, files, summary, data):
    report_plots.plot_variant_deltas(deltas, os.path.join(directory, DELTAS_PNG))
    files.append(DELTAS_PNG)
    data["variant_deltas"] = deltas.to_json()
    for v, variant in enumerate(deltas.variants):
        worse = [code for i, code in enumerate(deltas.languages) if np.isfinite(deltas.harm[v, i]) and deltas.harm[v, i] > 0]
        compared = int(np.isfinite(deltas.harm[v]).sum())
        groups = []
        for group, name in ((HIGH, "high-resource"), (LOW, "low-resource")):
            value = deltas.group_mean(group)[v]
            if np.isfinite(value):
                groups.append(f"{name} {value:+.1f}%")
        summary.append(
            f"**{variant} vs {deltas.baseline} ({deltas.metric}):** worse for {len(worse)} of {compared} languages"
            + (f" ({', '.join(worse)})" if worse else "")
            + (f"; mean change {', '.join(groups)}." if groups else ".")
        )
    marks = [f"{code} ({'H' if r == HIGH else 'L' if r == LOW else '-'})" for code, r in zip(deltas.languages, deltas.resource)]
    rows = [[f"{deltas.baseline} (baseline)"] + [
        _number(m, "{:.3f}") + ("" if not np.isfinite(s) else f" ± {s:.3f}")
        for m, s in zip(deltas.baseline_mean, deltas.baseline_std)
    ]]
    for v, variant in enumerate(deltas.variants):
        cells = []
        for i in range(len(deltas.languages)):
            m, s, r = deltas.mean[v, i], deltas.std[v, i], deltas.relative[v, i]
            cell = _number(m, "{:.3f}") + ("" if not np.isfinite(s) else f" ± {s:.3f}")
            cells.append(cell + ("" if not np.isfinite(r) else f" ({r:+.1f}%)"))
        rows.append([variant] + cells)
    group_rows = [
        [variant] + [_number(deltas.group_mean(group)[v], "{:+.1f}%") for group in (HIGH, LOW)]
        for v, variant in enumerate(deltas.variants)
    ]
    direction = "lower" if deltas.lower_is_better else "higher"
    return "\n\n".join([
        f"## 4. Variants against the {deltas.baseline} baseline",
        f"Per language, each variant's {deltas.metric} ({direction} is better) compared with the "
        f"{deltas.baseline} baseline, in percent of the baseline. Red cells are worse than the baseline — "
        "negative interference when the variant is a joint model; blue cells are better (positive "
        "transfer). H marks high-resource languages, L low-resource ones.",
        f"![Variant deltas]({DELTAS_PNG})",
        _table(["variant"] + marks, rows),
        "Mean change per resource group:",
        _table(["variant", "high-resource", "low-resource"], group_rows),
    ])


# ---------------------------------------------------------------------- the report
def _load_history(similarity_history):
    if similarity_history is None:
        return None
    if isinstance(similarity_history, (str, os.PathLike)):
        similarity_history = read_similarity_log(os.fspath(similarity_history))
    history = [record for record in similarity_history if record.step is not None]
    return sorted(history, key=lambda record: record.step) or None


def write_report(
    output_dir: str,
    similarity: Optional[GradientSimilarity] = None,
    similarity_history=None,
    subnetworks: Optional[LanguageSubnetworks] = None,
    results=None,
    baseline: str = "mono",
    metric: str = "perplexity",
    lower_is_better: bool = True,
    high_resource=(),
    low_resource=(),
    pairs=None,
    title: str = "Interference report",
    context: Optional[dict] = None,
) -> str:
    """Writes the report directory and returns its path.

    Args:
        output_dir: the directory to write (replaced whole if it exists).
        similarity: gradient similarities of one model state.
        similarity_history: the probe's records over training: a list of
            `GradientSimilarity` or the path of a probe's JSON-lines log.
        subnetworks: the languages' sub-networks.
        results: ``{variant: {language: value}}`` (see `variant_deltas`) or a
            `VariantDeltas`.
        baseline, metric, lower_is_better: how `results` are compared.
        high_resource, low_resource: language codes of the two groups.
        pairs: language pairs to follow over training (default: `default_pairs`).
        title: the Markdown title.
        context: extra facts shown at the top and stored in the JSON
            (model directory, checkpoint, step, data).

    Raises:
        ValueError if nothing is given to report.
    """
    history = _load_history(similarity_history)
    deltas = results
    if results is not None and not isinstance(results, VariantDeltas):
        deltas = variant_deltas(results, baseline=baseline, metric=metric, lower_is_better=lower_is_better,
                                high_resource=high_resource, low_resource=low_resource)
    if similarity is None and history is None and subnetworks is None and deltas is None:
        raise ValueError(f"{output_dir}: nothing to report (no similarity, history, sub-networks or results).")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f"{output_dir}: exists and is not a directory; the report needs a directory.")
    with atomic_directory(output_dir, replace=True) as staging:
        files, summary, sections = [], [], []
        data = {"title": title, "context": dict(context or {})}
        missing = []
        if similarity is not None:
            sections.append(_similarity_section(similarity, staging, files, summary, data))
        else:
            missing.append("gradient similarity of a model state (section 1)")
        if history is not None:
            sections.append(_training_section(history, pairs, staging, files, summary, data))
        else:
            missing.append("the probe's log over training (section 2)")
        if subnetworks is not None:
            sections.append(_subnetwork_section(subnetworks, staging, files, summary, data))
        else:
            missing.append("language sub-networks (section 3)")
        if deltas is not None:
            sections.append(_deltas_section(deltas, staging, files, summary, data))
        else:
            missing.append("a results table of the variants (section 4)")
        files += [REPORT_JSON, REPORT_MARKDOWN]
        data["files"] = files
        header = [f"# {title}"]
        if context:
            header.append("\n".join(f"- {key}: {value}" for key, value in context.items()))
        header.append("## Summary\n\n" + "\n".join(f"- {line}" for line in summary))
        if missing:
            header.append("Not in this report (not given): " + "; ".join(missing) + ".")
        markdown = "\n\n".join(header + sections) + "\n"
        with open(os.path.join(staging, REPORT_JSON), "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, allow_nan=False)
        with open(os.path.join(staging, REPORT_MARKDOWN), "w", encoding="utf-8") as file:
            file.write(markdown)
    return output_dir
