"""Figures with 95% CIs: t over seeds, bootstrap over examples, seqeval span F1, baseline marks."""

import numpy as np
import pytest
from scipy import stats

from tf_metaling.estimates import (
    Estimate,
    example_estimate,
    ratio_estimate,
    ratio_record,
    seeds_estimate,
    span_f1_estimate,
)
from tf_metaling.study import tables as study_table


def test_seeds_estimate_is_the_t_interval():
    values = [0.61, 0.64, 0.70]
    estimate = seeds_estimate(values)
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(values), scale=stats.sem(values))
    assert estimate.value == pytest.approx(np.mean(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high))
    assert estimate.method == "t" and estimate.unit == "seeds" and estimate.n == 3
    one = seeds_estimate([0.5])
    assert not one.has_interval and one.includes(0.5) is None  # one seed: no interval, never "± 0"


def test_ratio_bootstrap_covers_the_binomial_value_and_is_deterministic():
    hits = np.array([1.0] * 30 + [0.0] * 70)
    estimate = ratio_estimate(np.stack([hits, np.ones(100)], axis=1))
    assert estimate.value == pytest.approx(0.3)
    # Normal approximation of the binomial CI: 0.3 +- 1.96 * sqrt(0.21 / 100) = [0.21, 0.39].
    assert estimate.low == pytest.approx(0.21, abs=0.03) and estimate.high == pytest.approx(0.39, abs=0.03)
    assert ratio_estimate(np.stack([hits, np.ones(100)], axis=1)) == estimate
    assert estimate.includes(0.25) and not estimate.includes(0.1)


def test_ratio_of_sums_weights_examples_by_their_predictions():
    record = ratio_record([3, 1, 0], [4, 1, 5], baseline=0.2)
    assert record["value"] == pytest.approx(4 / 10)
    assert example_estimate(record).value == pytest.approx(0.4)


def test_span_f1_is_seqeval_on_every_resample():
    from seqeval.metrics import f1_score

    true = [["B-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"], ["B-LOC", "O"]] * 10
    predicted = [["B-PER", "O", "O"], ["O", "B-ORG", "I-ORG"], ["B-LOC", "O"]] * 10
    estimate = span_f1_estimate(true, predicted)
    assert estimate.value == pytest.approx(f1_score(true, predicted))
    assert estimate.low <= estimate.value <= estimate.high


def _results(records, seeds=(0,)):
    return {"pivot": "en", "variants": ["mono", "joint_all"], "seeds": list(seeds),
            "groups": {"high": ["en", "ar"], "low": []}, "records": records, "reasons": {}, "task_info": {}}


def test_table_marks_a_ci_that_includes_the_baseline_and_explains_dashes():
    above = ratio_record([1.0] * 40 + [0.0] * 60, [1.0] * 100, baseline=0.1)  # 0.40, CI excludes 0.1
    chance = ratio_record([1.0] * 2 + [0.0] * 98, [1.0] * 100, baseline=0.02)  # 0.02, CI includes it
    results = _results({"retrieval": {"joint_all": {"ar": {"0": above}}, "mono": {}},
                        "mlm_accuracy": {"joint_all": {"en": {"0": chance}}}})
    results["reasons"] = {"retrieval": {"mono": {"ar": "no_pivot"}}}
    table = study_table.format_table(results, "retrieval")
    row = next(line for line in table.splitlines() if line.startswith("| ar"))
    assert ".400±" in row and "*" not in row and "-[1]" in row
    assert "-[1]: a Mono model does not know the pivot language" in table
    accuracy = study_table.format_table(results, "mlm_accuracy")
    assert ".020±" in accuracy and "*" in accuracy.splitlines()[3]
    assert "* the CI includes the baseline: not an effect." in accuracy


def test_table_over_seeds_uses_the_t_interval():
    per_seed = {str(s): ratio_record([v], [1.0], baseline=0.5) for s, v in enumerate((0.8, 0.9, 1.0))}
    table = study_table.format_table(_results({"retrieval": {"joint_all": {"ar": per_seed}}}, seeds=(0, 1, 2)),
                                     "retrieval")
    expected = seeds_estimate([0.8, 0.9, 1.0])
    assert f".900±{(expected.high - expected.low) / 2:.3f}"[:9].replace("±0.", "±.") in table
    assert "t interval over 3 seeds" in table
    summary = study_table.effect_summary(_results({"retrieval": {"joint_all": {"ar": per_seed}}}), "retrieval")
    assert summary["joint_all"]["ar"]["above_baseline"] is True
    assert isinstance(Estimate(**{k: v for k, v in summary["joint_all"]["ar"].items()
                                  if k in ("value", "low", "high", "method", "n")}), Estimate)


def test_table_marks_a_figure_below_its_baseline():
    below = ratio_record([1.0] * 10 + [0.0] * 90, [1.0] * 100, baseline=0.5)  # 0.10, CI far below 0.5
    table = study_table.format_table(_results({"retrieval": {"joint_all": {"ar": {"0": below}}}}), "retrieval")
    row = next(line for line in table.splitlines() if line.startswith("| ar"))
    assert row.rstrip(" |").endswith("!") and "! the whole CI is below the baseline" in table
