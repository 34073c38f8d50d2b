"""Figures with 95% confidence intervals, and how they compare with their baselines.

Every figure with a CI in the project is an `Estimate` (the one interval
type): a value, its 95% CI, the method that gave it and what its sample
counts. Tables, verdicts and the capacity curve all use it.

- Over seeds (two or more), or over any sample (`t_estimate`): the mean and
  Student's t interval (`scipy.stats.ttest_1samp`, whose p-value of "the mean
  is 0" it keeps: for a paired difference, the test of no effect).
- One seed: a percentile bootstrap over the test examples
  (`scipy.stats.bootstrap`, 1000 resamples, fixed seed). Every figure is a
  ratio of sums over examples (correct / total predictions, loss / masked
  tokens), so an example is the resampled unit: a sentence for tagging, a
  query for retrieval, a text for classification, a sequence for masked LM.
- Span F1 (NER) is recomputed by `seqeval` on every resample of sentences.

- A paired difference of ratio figures with one seed
  (`ratio_difference_estimate`): a percentile bootstrap resampling each run's
  examples independently.

`Estimate.includes(baseline)` tells whether the CI includes the baseline: such
a figure is not an effect, and the tables mark it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
from scipy import stats
from seqeval.metrics import f1_score

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
F1_BOOTSTRAP_RESAMPLES = 300  # seqeval per resample is slow; 300 keeps a cell under a few seconds


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A figure, its 95% CI (``low``, ``high``; None without one) and how the CI was made.

    ``method`` is "t", "bootstrap" or "none"; ``n`` the size of the sample the
    CI comes from and ``unit`` what it counts ("seeds", "languages",
    "examples"); ``p_value`` the t test's of a zero mean, when there is one.
    """

    value: float
    low: Optional[float] = None
    high: Optional[float] = None
    method: str = "none"
    n: int = 1
    unit: str = ""
    p_value: Optional[float] = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def includes(self, baseline: Optional[float]) -> Optional[bool]:
        """True if the CI includes `baseline`; None when there is no CI or no baseline."""
        if baseline is None or not self.has_interval:
            return None
        return bool(self.low <= baseline <= self.high)

    def describe(self) -> str:
        """How the CI was made, in words: "t over 3 seeds", "bootstrap over 800 test examples (one seed)"."""
        if self.method == "t":
            return f"t over {self.n} {self.unit}"
        if self.method == "bootstrap":
            return f"bootstrap over {self.n} test examples (one seed)"
        return "none"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def t_estimate(values: Sequence[float], unit: str = "seeds", confidence: float = CONFIDENCE) -> Estimate:
    """Mean and one-sample t interval of `values` (no interval for one value; None values are dropped)."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        raise ValueError("t_estimate: no values.")
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(mean, n=int(values.size), unit=unit)
    if np.allclose(values, values[0]):  # no spread: every resample of the data gives the mean
        return Estimate(mean, mean, mean, "t", int(values.size), unit)
    test = stats.ttest_1samp(values, 0.0)
    interval = test.confidence_interval(confidence)
    return Estimate(mean, float(interval.low), float(interval.high), "t", int(values.size), unit,
                    float(test.pvalue))


def seeds_estimate(values: Sequence[float]) -> Estimate:
    """Mean over seeds with a t interval (no interval for one seed; no p-value: a figure, not a difference)."""
    return dataclasses.replace(t_estimate(values, "seeds"), p_value=None)


def _ratio(numerators, denominators, axis=-1):
    total = np.sum(denominators, axis=axis)
    return np.sum(numerators, axis=axis) / np.where(total == 0, 1, total)


def ratio_estimate(pairs, seed: int = 0) -> Estimate:
    """``sum(num) / sum(den)`` over examples given as ``[[num, den], ...]``, with a bootstrap CI."""
    pairs = np.asarray(pairs, dtype=float).reshape(-1, 2)
    if pairs.shape[0] == 0 or pairs[:, 1].sum() == 0:
        raise ValueError("ratio_estimate: no examples with a prediction.")
    value = float(_ratio(pairs[:, 0], pairs[:, 1]))
    if pairs.shape[0] < 2 or np.allclose(pairs[:, 0] * pairs[:, 1].sum(), pairs[:, 1] * pairs[:, 0].sum()):
        # Every example has the same ratio: every resample gives the value itself.
        return Estimate(value, value, value, "bootstrap", int(pairs.shape[0]), "examples")
    result = stats.bootstrap(
        (pairs[:, 0], pairs[:, 1]), _ratio, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high), "bootstrap", int(pairs.shape[0]), "examples")


def span_f1_estimate(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]],
                     seed: int = 0) -> Estimate:
    """seqeval's span F1 (micro) over sentences, with a bootstrap CI over sentences."""
    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    if not true_tags or len(true_tags) != len(predicted_tags):
        raise ValueError("span_f1_estimate: needs as many predicted as true sentences (>= 1).")
    value = float(f1_score(true_tags, predicted_tags, zero_division=0))
    if len(true_tags) < 2:
        return Estimate(value, n=1, unit="examples")

    def statistic(indices):
        chosen = indices.astype(int)
        return f1_score([true_tags[i] for i in chosen], [predicted_tags[i] for i in chosen], zero_division=0)

    result = stats.bootstrap(
        (np.arange(len(true_tags)),), statistic, vectorized=False, n_resamples=F1_BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high), "bootstrap", len(true_tags), "examples")


def example_estimate(record: dict, seed: int = 0) -> Estimate:
    """The estimate of one run's per-example record (see `ratio_record`, `span_f1_record`)."""
    if record["kind"] == "ratio":
        return ratio_estimate(record["examples"], seed)
    if record["kind"] == "span_f1":
        return span_f1_estimate(record["true"], record["predicted"], seed)
    raise ValueError(f"unknown record kind {record['kind']!r}")


def ratio_record(numerators, denominators, baseline: Optional[float] = None) -> dict:
    """A per-example record of a ratio-of-sums figure, as stored in a run's results.json."""
    numerators = np.asarray(numerators, dtype=float)
    denominators = np.asarray(denominators, dtype=float)
    keep = denominators > 0
    examples = np.stack([numerators[keep], denominators[keep]], axis=1)
    return {
        "kind": "ratio",
        "value": float(_ratio(examples[:, 0], examples[:, 1])) if keep.any() else None,
        "baseline": baseline,
        "examples": np.round(examples, 6).tolist(),
    }


def span_f1_record(true_tags, predicted_tags, baseline: Optional[float] = 0.0) -> dict:
    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    return {
        "kind": "span_f1",
        "value": float(f1_score(true_tags, predicted_tags, zero_division=0)),
        "baseline": baseline,
        "true": true_tags,
        "predicted": predicted_tags,
    }


def worse_by(a, b, higher_is_better: bool):
    """How much worse `a` is than `b` (> 0: `a` worse), whatever the metric's direction."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return b - a if higher_is_better else a - b


def ratio_difference_estimate(pairs_of_runs: Sequence[tuple], higher_is_better: bool, seed: int = 0) -> Estimate:
    """One seed: how much worse run A is than run B, averaged over pairs, with a bootstrap over examples.

    `pairs_of_runs`: ``[(examples of A, examples of B), ...]`` (one pair per
    language), each an ``[[num, den], ...]`` array of a ratio figure. Each run's
    examples are resampled independently (`scipy.stats.bootstrap`, percentile).
    """
    runs = [np.asarray(examples, dtype=float).reshape(-1, 2) for pair in pairs_of_runs for examples in pair]
    if not runs:
        raise ValueError("ratio_difference_estimate: no runs.")

    def ratio(pairs):
        total = pairs[:, 1].sum()
        return pairs[:, 0].sum() / total if total else 0.0

    def statistic(*indices):
        chosen = [pairs[np.asarray(i, dtype=int)] for pairs, i in zip(runs, indices)]
        return float(np.mean([worse_by(ratio(chosen[k]), ratio(chosen[k + 1]), higher_is_better)
                              for k in range(0, len(chosen), 2)]))

    whole = statistic(*[np.arange(len(pairs)) for pairs in runs])
    sizes = [len(pairs) for pairs in runs]
    if min(sizes) < 2:
        return Estimate(whole, n=sum(sizes), unit="examples")
    result = stats.bootstrap(
        tuple(np.arange(size) for size in sizes), statistic, paired=False, vectorized=False,
        n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # every resample equal: the CI is the value
        low = high = whole
    return Estimate(whole, low, high, "bootstrap", sum(sizes), "examples")
