"""Figures with 95% confidence intervals, and how they compare with their baselines.

Every downstream figure of a study is an `Estimate`: a value with a 95% CI
and the method that gave it.

- Over seeds (two or more): the mean and Student's t interval of the per-seed
  values (`scipy.stats.t`).
- One seed: a percentile bootstrap over the test examples
  (`scipy.stats.bootstrap`, 1000 resamples, fixed seed). Every figure is a
  ratio of sums over examples (correct / total predictions, loss / masked
  tokens), so an example is the resampled unit: a sentence for tagging, a
  query for retrieval, a text for classification, a sequence for masked LM.
- Span F1 (NER) is recomputed by `seqeval` on every resample of sentences.

`Estimate.includes(baseline)` tells whether the CI includes the baseline: such
a figure is not an effect, and the tables mark it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
F1_BOOTSTRAP_RESAMPLES = 300  # seqeval per resample is slow; 300 keeps a cell under a few seconds


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A figure, its 95% CI (``low``, ``high``; None without one) and how the CI was made."""

    value: float
    low: Optional[float] = None
    high: Optional[float] = None
    method: str = "none"  # "seeds-t", "bootstrap", or "none"
    n: int = 1  # seeds, or examples for a bootstrap

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def includes(self, baseline: Optional[float]) -> Optional[bool]:
        """True if the CI includes `baseline`; None when there is no CI or no baseline."""
        if baseline is None or not self.has_interval:
            return None
        return bool(self.low <= baseline <= self.high)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def seeds_estimate(values: Sequence[float]) -> Estimate:
    """Mean over seeds with a t interval (no interval for one seed)."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        raise ValueError("seeds_estimate: no values.")
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(mean, method="none", n=1)
    if np.allclose(values, values[0]):
        return Estimate(mean, mean, mean, "seeds-t", int(values.size))
    low, high = stats.t.interval(CONFIDENCE, df=values.size - 1, loc=mean, scale=stats.sem(values))
    return Estimate(mean, float(low), float(high), "seeds-t", int(values.size))


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
        return Estimate(value, value, value, "bootstrap", int(pairs.shape[0]))
    result = stats.bootstrap(
        (pairs[:, 0], pairs[:, 1]), _ratio, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high), "bootstrap", int(pairs.shape[0]))


def span_f1_estimate(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]],
                     seed: int = 0) -> Estimate:
    """seqeval's span F1 (micro) over sentences, with a bootstrap CI over sentences."""
    from seqeval.metrics import f1_score

    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    if not true_tags or len(true_tags) != len(predicted_tags):
        raise ValueError("span_f1_estimate: needs as many predicted as true sentences (>= 1).")
    value = float(f1_score(true_tags, predicted_tags, zero_division=0))
    if len(true_tags) < 2:
        return Estimate(value, method="none", n=1)

    def statistic(indices):
        chosen = indices.astype(int)
        return f1_score([true_tags[i] for i in chosen], [predicted_tags[i] for i in chosen], zero_division=0)

    result = stats.bootstrap(
        (np.arange(len(true_tags)),), statistic, vectorized=False, n_resamples=F1_BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high), "bootstrap", len(true_tags))


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
    from seqeval.metrics import f1_score

    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    return {
        "kind": "span_f1",
        "value": float(f1_score(true_tags, predicted_tags, zero_division=0)),
        "baseline": baseline,
        "true": true_tags,
        "predicted": predicted_tags,
    }
