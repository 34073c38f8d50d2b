"""Per-language change of each variant against the monolingual baseline.

Negative interference is a language doing worse in a joint model than alone.
Given a results table ``{variant: {language: value}}`` (a value is a number,
a list of per-seed numbers, or ``{"mean": m, "std": s}``), `variant_deltas`
gives, for every variant other than the baseline and every language, the
change of the metric against the baseline (absolute and in percent of the
baseline), whether that change is worse or better, and the mean change over
the high- and the low-resource languages.

"Worse" follows the metric: for perplexity or loss a rise, for accuracy a
fall (`lower_is_better`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

HIGH = "high"
LOW = "low"


def _mean_and_std(value, where):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value), float("nan")
    if isinstance(value, dict):
        if "mean" not in value:
            raise ValueError(f"{where}: a dict value needs 'mean' (and optionally 'std'), got keys {sorted(value)}.")
        return float(value["mean"]), float(value.get("std", float("nan")))
    if isinstance(value, (list, tuple, np.ndarray)):
        seeds = np.asarray(value, dtype=np.float64)
        if seeds.ndim != 1 or seeds.size == 0:
            raise ValueError(f"{where}: a list value must hold one number per seed, got {value!r}.")
        # One seed has no spread: NaN (printed without "±"), not a std of 0 that reads as certainty.
        return float(seeds.mean()), float(seeds.std(ddof=1)) if seeds.size > 1 else float("nan")
    raise TypeError(f"{where}: expected a number, a list of per-seed numbers or {{'mean', 'std'}}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class VariantDeltas:
    """Changes of each variant against the baseline, per language.

    Attributes:
        metric, lower_is_better, baseline: what is compared.
        languages: the columns.
        variants: the rows (the baseline excluded).
        resource: per language ``"high"``, ``"low"`` or None.
        baseline_mean / baseline_std: ``[L]``.
        mean / std: ``[V, L]`` the variants' values.
        delta: ``[V, L]`` variant minus baseline (NaN where either is missing).
        relative: ``[V, L]`` delta in percent of the baseline.
    """

    metric: str
    lower_is_better: bool
    baseline: str
    languages: tuple
    variants: tuple
    resource: tuple
    baseline_mean: np.ndarray
    baseline_std: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    delta: np.ndarray
    relative: np.ndarray

    @property
    def harm(self) -> np.ndarray:
        """``[V, L]`` relative change signed so that positive means worse than the baseline."""
        return self.relative if self.lower_is_better else -self.relative

    def group_mean(self, group: str, relative: bool = True) -> np.ndarray:
        """``[V]`` mean change over the languages of resource `group` ("high" or "low")."""
        columns = [i for i, r in enumerate(self.resource) if r == group]
        values = self.relative if relative else self.delta
        if not columns:
            return np.full(len(self.variants), np.nan)
        with np.errstate(invalid="ignore"):
            selected = values[:, columns]
            counts = np.isfinite(selected).sum(axis=1)
            return np.where(counts > 0, np.nansum(selected, axis=1) / np.maximum(counts, 1), np.nan)

    def to_json(self) -> dict:
        def clean(value):
            return None if value is None or not math.isfinite(value) else float(value)

        table = {}
        for v, variant in enumerate(self.variants):
            table[variant] = {
                code: {
                    "mean": clean(self.mean[v, i]),
                    "std": clean(self.std[v, i]),
                    "delta": clean(self.delta[v, i]),
                    "relative_percent": clean(self.relative[v, i]),
                    "worse_than_baseline": None if not math.isfinite(self.harm[v, i]) else bool(self.harm[v, i] > 0),
                }
                for i, code in enumerate(self.languages)
            }
        return {
            "metric": self.metric,
            "lower_is_better": self.lower_is_better,
            "baseline": self.baseline,
            "languages": list(self.languages),
            "resource": {code: r for code, r in zip(self.languages, self.resource)},
            "baseline_values": {
                code: {"mean": clean(m), "std": clean(s)}
                for code, m, s in zip(self.languages, self.baseline_mean, self.baseline_std)
            },
            "variants": table,
            "group_mean_relative_percent": {
                group: {variant: clean(value) for variant, value in zip(self.variants, self.group_mean(group))}
                for group in (HIGH, LOW)
            },
        }


def variant_deltas(
    results: dict,
    baseline: str = "mono",
    metric: str = "perplexity",
    lower_is_better: bool = True,
    high_resource=(),
    low_resource=(),
    languages=None,
) -> VariantDeltas:
    """Compares every variant of `results` with `baseline`, per language.

    Args:
        results: ``{variant: {language: number | [per-seed numbers] | {"mean", "std"}}}``.
        baseline: the variant compared against (the paper's monolingual models).
        metric: the metric's name, for labels.
        lower_is_better: True for perplexity/loss, False for accuracy/F1.
        high_resource, low_resource: language codes of the two groups.
        languages: column order (default: the baseline's languages, then others as met).
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("results: expected a non-empty dict {variant: {language: value}}.")
    if baseline not in results:
        raise KeyError(f"results: the baseline variant {baseline!r} is missing; variants: {sorted(results)}.")
    for variant, row in results.items():
        if not isinstance(row, dict):
            raise TypeError(f"results[{variant!r}]: expected a dict {{language: value}}, got {type(row).__name__}.")
    overlap = set(high_resource) & set(low_resource)
    if overlap:
        raise ValueError(f"Languages {sorted(overlap)} are marked both high- and low-resource.")
    if languages is None:
        languages = list(results[baseline])
        for row in results.values():
            languages += [code for code in row if code not in languages]
    languages = tuple(languages)
    variants = tuple(v for v in results if v != baseline)

    def table(variant):
        means, stds = [], []
        for code in languages:
            if code in results[variant]:
                m, s = _mean_and_std(results[variant][code], f"results[{variant!r}][{code!r}]")
            else:
                m, s = float("nan"), float("nan")
            means.append(m)
            stds.append(s)
        return np.asarray(means), np.asarray(stds)

    baseline_mean, baseline_std = table(baseline)
    rows = [table(v) for v in variants]
    mean = np.stack([r[0] for r in rows]) if rows else np.zeros((0, len(languages)))
    std = np.stack([r[1] for r in rows]) if rows else np.zeros((0, len(languages)))
    delta = mean - baseline_mean[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(baseline_mean[None, :] != 0, 100.0 * delta / np.abs(baseline_mean[None, :]), np.nan)
    resource = tuple(HIGH if c in high_resource else LOW if c in low_resource else None for c in languages)
    return VariantDeltas(
        metric=metric,
        lower_is_better=bool(lower_is_better),
        baseline=baseline,
        languages=languages,
        variants=variants,
        resource=resource,
        baseline_mean=baseline_mean,
        baseline_std=baseline_std,
        mean=mean,
        std=std,
        delta=delta,
        relative=relative,
    )
