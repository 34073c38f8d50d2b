"""Treatments against interference, judged where the synthetic control finds interference.

A treatment (+LS, +Meta LS, +PCGrad, +GradVac, +LS+GradVac) is compared, per
condition and language, on the held-out MLM loss with two paired differences
and their 95% CIs (`verdicts.difference_interval`: t over seeds, or with one
seed a bootstrap over test examples):

- against Mono: the cost of sharing the model that is left;
- against its baseline: JointAll for the LS treatments, JointAll on the same
  mixed batches for the surgery treatments (`BASELINES`), so that batching is
  not a second difference.

Its verdict: *no interference to remove* when the baseline is not worse than
Mono (its CI includes 0 or lies below); else *removes the interference* when
the treatment's difference to Mono has a CI that includes 0 or favours the
treatment; *reduces it* when it is significantly better than its baseline;
*neither* otherwise. As every verdict of the project, it comes only from runs
that converged (else "no verdict: N of M runs did not converge").

`plot_gradient_cosines` draws the mechanism: the cosine between the two
languages' held-out gradients on the shared parameters over training (the
interference probe's log), mean over seeds, one line per variant.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from tf_metaling.atomic_files import atomic_path
from tf_metaling.configs.variants import VARIANT_NAMES, VARIANT_TITLES
from tf_metaling.estimates import Estimate
from tf_metaling.interference.similarity_log import LOG_FILE_NAME, read_similarity_log
from tf_metaling.study.tables import markdown_table, wrap
from tf_metaling.study.verdicts import NO_VERDICT, difference_interval, runs_of

BASELINES = {
    "joint_all_ls": "joint_all",
    "joint_all_meta_ls": "joint_all",
    "joint_all_pcgrad": "joint_all_mixed",
    "joint_all_gradvac": "joint_all_mixed",
    "joint_all_ls_gradvac": "joint_all_mixed",
}
REMOVES = "removes the interference"
REDUCES = "reduces it"
NEITHER = "neither"
NOTHING_TO_REMOVE = "no interference to remove"


@dataclasses.dataclass(frozen=True)
class TreatmentVerdict:
    """One treatment in one language of one condition: its differences and its verdict."""

    variant: str
    language: str
    versus_mono: Optional[Estimate]  # variant - Mono (positive: the joint model still costs)
    versus_baseline: Optional[Estimate]  # variant - its baseline (negative: the treatment helps)
    baseline_versus_mono: Optional[Estimate]
    status: str


def _interval(values, records, worse, better, code) -> Optional[Estimate]:
    if code not in values.get(worse, {}) or code not in values.get(better, {}):
        return None
    return difference_interval(values, worse, better, [code], higher_is_better=False, records=records)[0]


def treatment_verdicts(values: Mapping, records: Optional[Mapping], languages: Sequence[str], seeds: Sequence,
                       convergence: Optional[Mapping[str, bool]] = None) -> list:
    """`TreatmentVerdict`s of every treatment `values` has (``{variant: {language: [per-seed loss]}}``)."""
    verdicts = []
    for variant, baseline in BASELINES.items():
        if variant not in values or baseline not in values:
            continue
        for code in languages:
            versus_mono = _interval(values, records, variant, "mono", code)
            versus_baseline = _interval(values, records, variant, baseline, code)
            baseline_versus_mono = _interval(values, records, baseline, "mono", code)
            if versus_mono is None or versus_baseline is None or baseline_versus_mono is None:
                continue
            runs = [name for name in runs_of((variant, baseline, "mono"), [code], seeds)
                    if convergence is not None and name in convergence]
            failed = [name for name in runs if not convergence[name]]
            if failed:
                status = f"{NO_VERDICT}: {len(failed)} of {len(runs)} runs did not converge"
            elif baseline_versus_mono.low is None or baseline_versus_mono.low <= 0:
                status = NOTHING_TO_REMOVE
            elif versus_mono.low is not None and versus_mono.low <= 0:
                status = REMOVES
            elif versus_baseline.high is not None and versus_baseline.high < 0:
                status = REDUCES
            else:
                status = NEITHER
            verdicts.append(TreatmentVerdict(variant, code, versus_mono, versus_baseline, baseline_versus_mono,
                                             status))
    return verdicts


def _cell(estimate: Optional[Estimate]) -> str:
    """``+0.031±.012``: the difference and the half-width of its 95% CI."""
    if estimate is None:
        return "-"
    if estimate.low is None:
        return f"{estimate.value:+.3f}"
    return f"{estimate.value:+.3f}±{(estimate.high - estimate.low) / 2:.3f}".replace("±0.", "±.")


def treatment_table(per_condition: Mapping[str, list]) -> str:
    """Markdown: per condition, a table of treatment x language with both differences and the verdict."""
    sections = []
    for title, verdicts in per_condition.items():
        rows = [[VARIANT_TITLES[v.variant], v.language, _cell(v.baseline_versus_mono), _cell(v.versus_mono),
                 _cell(v.versus_baseline), v.status] for v in verdicts]
        if rows:
            header = ["treatment", "lang", "base-Mono", "vs Mono", "vs base", "verdict"]
            sections += ["", f"{title}:"] + markdown_table(header, rows)
    if not sections:
        return ""
    caption = wrap(
        "Treatments where the control finds interference: held-out MLM loss, nats per masked token; each "
        "difference with the half-width of its 95% CI (t over seeds; one seed: a bootstrap over test examples). "
        "base: the treatment's baseline, JointAll for LS layers and JointAll on the same mixed batches "
        "(JointAll-mix) for surgery; base-Mono: the interference the treatment meets; vs Mono: the cost of sharing "
        "left (positive = worse than Mono); vs base: the treatment against its baseline (negative = it helps). "
        "Verdict: no interference to remove when the baseline "
        "is not worse than Mono; removes the interference when the CI against Mono includes 0 or favours the "
        "treatment; reduces it when significantly better than its baseline; only from runs that converged.")
    return "\n".join([caption] + sections)


def gradient_cosines(run_dirs: Sequence[str], pair: tuple) -> Optional[tuple]:
    """``(steps, mean cosine over runs)`` of `pair` from the runs' probe logs (None without logs)."""
    curves = []
    for run_dir in run_dirs:
        path = os.path.join(run_dir, "interference", LOG_FILE_NAME)
        if not os.path.exists(path):
            continue
        records = read_similarity_log(path)
        if not records or not set(pair) <= set(records[0].languages):
            continue
        a, b = (records[0].languages.index(code) for code in pair)
        curves.append({record.step: float(record.overall[a, b]) for record in records})
    if not curves:
        return None
    steps = sorted(set.intersection(*(set(curve) for curve in curves)))
    return steps, [float(np.nanmean([curve[step] for curve in curves])) for step in steps]


def plot_gradient_cosines(per_condition: Mapping[str, Mapping[str, Sequence[str]]], pair: tuple, path: str) -> str:
    """One panel per condition, one line per variant: cos(g_a, g_b) over training, mean over seeds; PNG at `path`.

    `per_condition`: ``{condition title: {variant: [run directories]}}``.
    """
    panels = {title: {variant: curve for variant, dirs in variants.items()
                      if (curve := gradient_cosines(dirs, pair)) is not None}
              for title, variants in per_condition.items()}
    panels = {title: curves for title, curves in panels.items() if curves}
    if not panels:
        raise ValueError(f"plot_gradient_cosines: no run has an interference probe log to draw into {path}.")
    figure = Figure(figsize=(5.0 * len(panels) + 0.5, 4.0), layout="constrained")
    axes_row = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axes, (title, curves) in zip(axes_row, panels.items()):
        for variant, (steps, cosines) in curves.items():
            axes.plot(steps, cosines, linewidth=1.3, label=VARIANT_NAMES.get(variant, variant))
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("training step")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    axes_row[0].set_ylabel(f"cos(g_{pair[0]}, g_{pair[1]}), held-out batches,\nshared parameters, mean over seeds")
    figure.suptitle("The languages' gradient cosine over training (the interference probe)", fontsize=11)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    return path
