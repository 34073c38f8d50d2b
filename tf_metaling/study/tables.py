"""The study's tables, generated from its results JSON (never typed by hand).

`study_tables(results)` turns what `ComparisonStudy.collect` returns (and
``results.json`` holds) into Markdown tables: one per metric, languages x
(baseline, [Scratch,] variants). A cell is the figure and the half-width of
its 95% CI (``0.412±.034``): the t interval over seeds with two or more
seeds, else a bootstrap over the test examples of the one seed (see
`tf_metaling.estimates`). A ``*`` marks a figure whose CI includes its
baseline: not an effect. Every ``-`` has its reason in a footnote (``-[1]``: footnote 1). Lines fit
100 columns.
"""

from __future__ import annotations

import math
from typing import Optional

from tf_metaling.configs.variants import VARIANT_TITLES
from tf_metaling.estimates import Estimate, example_estimate, seeds_estimate
from tf_metaling.training.convergence import ConvergenceRule

# metric key prefix -> (title, digits, higher is better)
METRICS = {
    "mlm_loss": ("Held-out MLM loss (nats per masked token; lower is better)", 3, False),
    "perplexity": ("Held-out MLM perplexity (exp of the loss; lower is better)", 1, False),
    "mlm_accuracy": ("Held-out masked-token accuracy; baseline: the language's most frequent token", 3, True),
    "retrieval": ("Retrieval accuracy@1, X -> {pivot}; baseline: chance, 1/N candidates", 3, True),
    "classification": ("{protocol} classification accuracy of a probe on frozen embeddings, {trained}; "
                       "{task}; test sets balanced per class; baseline: majority class", 3, True),
    "finetuned": ("Accuracy of the classifier fine-tuned on {pivot} ({trained}, {steps} steps), tested in every "
                  "language (zero-shot except {pivot}); {task}; test sets balanced per class; baseline: majority "
                  "class", 3, True),
    "tagging": ("{task} fine-tuned in each language, test split; baseline: {baseline}; Scratch: the "
                "same tagger and steps without pretraining", 3, True),
}
BASELINE_KINDS = ("retrieval", "classification", "finetuned", "tagging")
REASONS = {
    "pivot": "the pivot language has no X -> pivot retrieval of its own",
    "no_pivot": "a Mono model does not know the pivot language, so it has no cross-lingual figure",
    "no_model": "this variant has no model that knows the language",
    "no_data": "the task has no data for this language",
    "not_run": "the run has not finished (rerun the study to complete it)",
}


def cell_estimate(per_seed: dict) -> Optional[Estimate]:
    """``{seed: record}`` -> the cell's estimate (seeds t interval, or bootstrap of one seed)."""
    records = [per_seed[s] for s in sorted(per_seed)]
    if not records:
        return None
    if len(records) >= 2:
        return seeds_estimate([r["value"] for r in records])
    return example_estimate(records[0])


def _format(estimate: Optional[Estimate], digits: int, baseline, transform=None) -> str:
    if estimate is None:
        return "-"
    value, low, high = estimate.value, estimate.low, estimate.high
    if transform is not None:
        value = transform(value)
        low, high = (None, None) if low is None else (transform(low), transform(high))
    text = _short(value, digits)
    if low is not None:
        text += "±" + _short((high - low) / 2, digits)
    if baseline is not None and low is not None and low <= baseline <= high:
        text += "*"
    elif baseline is not None and high is not None and high < baseline:
        text += "!"  # the whole CI below the baseline
    return text


def _short(value: float, digits: int) -> str:
    """``0.412`` -> ``.412`` (shares and accuracies; keeps tables within 100 columns)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def _metric_title(metric: str, pivot: str, task_info: dict) -> tuple:
    kind, _, task = metric.partition(":")
    title, digits, higher = METRICS[kind]
    info = task_info.get(metric, {})
    zero_shot = info.get("protocol", "zero_shot") == "zero_shot"
    return title.format(
        pivot=pivot, task=info.get("title", task), baseline=info.get("baseline", "majority"),
        protocol="Zero-shot" if zero_shot else "In-language", steps=info.get("steps", "?"),
        trained=info.get("trained") or (f"trained on {pivot}" if zero_shot else "trained and tested in each language"),
    ), digits, higher


def format_table(results: dict, metric: str) -> str:
    """One metric's table, from the results JSON."""
    data = results["records"].get(metric if metric != "perplexity" else "mlm_loss", {})
    # Every variant that ran shows in every table (a "-" says why it has no figure); Scratch only where it ran.
    ran = {v for rows in results["records"].values() for v in rows}
    variants = [v for v in ["scratch"] + list(results["variants"]) if v in data or (v in ran and v != "scratch")]
    data = {v: data.get(v, {}) for v in variants}
    title, digits, _ = _metric_title(metric, results["pivot"], results.get("task_info", {}))
    transform = math.exp if metric == "perplexity" else None
    reasons = results.get("reasons", {}).get(metric if metric != "perplexity" else "mlm_loss", {})
    groups = results["groups"]
    seeds = results["seeds"]
    has_baseline = metric in ("mlm_accuracy",) or metric.split(":")[0] in BASELINE_KINDS
    header = ["lang"] + (["base"] if has_baseline else []) + [VARIANT_TITLES[v] for v in variants]
    rows, used_reasons, marked, below = [], {}, False, False
    for group in ("high", "low"):
        for code in groups.get(group, []):
            baseline = None
            for variant in variants:
                for record in data[variant].get(code, {}).values():
                    baseline = record.get("baseline") if baseline is None else baseline
            if not any(code in data[v] for v in variants) and code not in reasons:
                continue
            cells = [code + ("" if group == "high" else "(L)")]
            if has_baseline:
                cells.append("-" if baseline is None else _short(baseline, digits))
            for variant in variants:
                estimate = cell_estimate(data[variant].get(code, {}))
                text = _format(estimate, digits, baseline, transform)
                if text == "-":
                    reason = reasons.get(variant, {}).get(code, "no_model")
                    number = used_reasons.setdefault(reason, len(used_reasons) + 1)
                    text = f"-[{number}]"
                marked = marked or text.endswith("*")
                below = below or text.endswith("!")
                cells.append(text)
            rows.append(cells)
    if not rows:
        return ""
    lines = [wrap(title)] + markdown_table(header, rows)
    notes = []
    if len(seeds) >= 2:
        notes.append(f"± = half-width of the 95% CI: t interval over {len(seeds)} seeds.")
    else:
        notes.append("± = half-width of the 95% CI: percentile bootstrap over test examples (1000 resamples; "
                     "one seed, so seed-to-seed variation is not included).")
    if marked:
        notes.append("* the CI includes the baseline: not an effect.")
    if below:
        notes.append("! the whole CI is below the baseline: worse than the baseline.")
    if any(code in groups.get("low", []) for code in (r[0].rstrip("(L)") for r in rows)):
        notes.append("(L) low-resource language.")
    for reason, number in used_reasons.items():
        notes.append(f"-[{number}]: {REASONS.get(reason, reason)}.")
    return "\n".join(lines + [wrap(note) for note in notes])


def markdown_table(header, rows) -> list[str]:
    """A Markdown table's lines, every column padded to its widest cell."""
    widths = [max(len(str(r[i])) for r in list(rows) + [header]) for i in range(len(header))]
    return (["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
            + ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows])


def wrap(text: str, width: int = 100) -> str:
    """`text` folded at word boundaries to lines of at most `width` columns."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def study_tables(results: dict) -> list[str]:
    """Every table of a study's results JSON, in reading order."""
    metrics = list(results["records"])
    ordered = [m for m in ("mlm_loss",) if m in metrics]
    ordered += ["perplexity"] if "mlm_loss" in metrics else []
    ordered += [m for m in ("mlm_accuracy",) if m in metrics]
    for prefix in BASELINE_KINDS:
        ordered += sorted(m for m in metrics if m.split(":")[0] == prefix)
    return [table for table in (format_table(results, m) for m in ordered) if table]


def run_convergence(results: dict) -> dict:
    """``{run name: converged}`` of the study's trained runs, as `ConvergenceRule` judged them."""
    return {name: bool(run.get("convergence", {}).get("converged", True))
            for name, run in (results.get("runs") or {}).items()}


def convergence_table(results: dict) -> str:
    """One row per trained run: steps, how it stopped, the last window's improvement and the verdict."""
    runs = results.get("runs") or {}
    if not runs:
        return ""
    header = ["run", "steps", "stopped", "weights", "improvement", "verdict"]
    rows = []
    for name, run in runs.items():
        curve, verdict = run["curve"], run["convergence"]
        improvement = verdict.get("improvement")
        stopped = "plateau" if curve.get("stopped_early") else "budget"
        best = curve.get("restored_best_step")
        rows.append([name, str(curve["steps"][-1] if curve["steps"] else run.get("step")), stopped,
                     f"best (step {best})" if best else "last",
                     "-" if improvement is None else f"{improvement:.1%}", verdict["label"]])
    converged = sum(run["convergence"]["converged"] for run in runs.values())
    lines = [wrap(f"Convergence of the runs: {converged} of {len(runs)} converged. {ConvergenceRule().describe()} "
                  "improvement: relative drop of the best held-out loss over that window. A figure from a run that "
                  "did not converge is a figure of an under-trained model. weights: the run's final weights, its last "
                  "or (trainer.restore_best) those of its best evaluation.")] + markdown_table(header, rows)
    return "\n".join(lines)


def cell_values(results: dict, metric: str) -> dict:
    """``{variant: {code: [per-seed values]}}`` of a metric (e.g. for the interference report)."""
    data = results["records"].get(metric, {})
    return {
        variant: {code: [per_seed[s]["value"] for s in sorted(per_seed)] for code, per_seed in rows.items()}
        for variant, rows in data.items()
    }


def effect_summary(results: dict, metric: str) -> dict:
    """``{variant: {code: {"value", "low", "high", "baseline", "above_baseline"}}}`` for JSON and checks."""
    data = results["records"].get(metric, {})
    summary = {}
    for variant, rows in data.items():
        for code, per_seed in rows.items():
            estimate = cell_estimate(per_seed)
            baseline = next(iter(per_seed.values())).get("baseline")
            above = None if baseline is None or not estimate.has_interval else bool(estimate.low > baseline)
            summary.setdefault(variant, {})[code] = {**estimate.as_dict(), "baseline": baseline,
                                                     "above_baseline": above}
    return summary

