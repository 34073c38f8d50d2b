"""The verdict per claim on fixed per-seed figures with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tf_metaling.estimates import Estimate, t_estimate
from tf_metaling.study.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_TESTED,
    SUPPORTED,
    Verdict,
    claim_verdicts,
    format_verdicts,
    status_of,
    verdict_tally,
)

GROUPS = {"high": ["en", "fr"], "low": ["sw", "te"]}
LANGUAGES = GROUPS["high"] + GROUPS["low"]
BASE = {"en": 3.0, "fr": 3.2, "sw": 4.0, "te": 4.1}  # per-language Mono figure
CLEAR = [0.10, 0.12, 0.11]  # per-seed effect of the claim's direction: CI above 0
NOISY = [0.10, -0.10, 0.05]  # CI includes 0
# (claim) -> (variant that is worse when the claim holds, the better one, languages that carry the effect)
CLAIM_PAIRS = {
    "a": ("joint_all", "mono", GROUPS["high"]),
    "b": ("joint_all", "mono", GROUPS["low"]),
    "d": ("joint_all", "joint_all_ls", LANGUAGES),
    "e": ("joint_all_ls", "joint_all_meta_ls", LANGUAGES),
}


def _figures(higher_is_better, worse, better, languages, effect):
    """Every variant equal to Mono, except `worse`, which is `effect` worse than `better` on `languages`."""
    sign = -1.0 if higher_is_better else 1.0
    values = {v: {c: [BASE[c]] * 3 for c in LANGUAGES} for v in ("mono", "joint_all", "joint_all_ls",
                                                                  "joint_all_meta_ls")}
    values["joint_pair"] = {c: [BASE[c]] * 3 for c in LANGUAGES if c != "en"}
    for code in languages:
        values[worse][code] = [values[better][code][k] + sign * effect[k] for k in range(3)]
    return values


def _verdict(verdicts, claim):
    return next(v for v in verdicts if v.claim == claim)


def test_status_follows_the_ci():
    assert status_of(0.01, 0.2) == SUPPORTED
    assert status_of(-0.2, -0.01) == CONTRADICTED
    assert status_of(-0.1, 0.2) == INCONCLUSIVE
    assert status_of(0.0, 0.2) == INCONCLUSIVE  # touching 0 is including it
    assert status_of(None, None) == INCONCLUSIVE


def test_t_estimate_is_scipys_one_sample_t():
    interval = t_estimate([1.0, 2.0, 3.0], "seeds")
    half = stats.t.ppf(0.975, df=2) * stats.sem([1.0, 2.0, 3.0])
    assert interval.value == pytest.approx(2.0)
    assert (interval.low, interval.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert interval.p_value == pytest.approx(stats.ttest_1samp([1.0, 2.0, 3.0], 0.0).pvalue)
    assert interval.describe() == "t over 3 seeds"
    assert t_estimate([0.5], "seeds").low is None


@pytest.mark.parametrize("higher_is_better", [False, True], ids=["loss", "accuracy"])
@pytest.mark.parametrize("claim", sorted(CLAIM_PAIRS))
def test_each_claim_gets_the_right_sign_or_inconclusive(claim, higher_is_better):
    worse, better, languages = CLAIM_PAIRS[claim]
    for effect, expected in ((CLEAR, SUPPORTED), ([-e for e in CLEAR], CONTRADICTED), (NOISY, INCONCLUSIVE)):
        values = _figures(higher_is_better, worse, better, languages, effect)
        verdict = _verdict(claim_verdicts(values, GROUPS, higher_is_better, pivot="en"), claim)
        # the per-seed differences average the claim's languages; only `languages` carry the effect
        share = len(languages) / len(verdict.languages)
        expected_mean = share * float(np.mean(effect))
        assert verdict.status == expected, (claim, effect, verdict.sentence)
        assert verdict.effect == pytest.approx(expected_mean)
        assert verdict.estimate.n == 3 and verdict.estimate.unit == "seeds"
        reference = t_estimate(share * np.asarray(effect), "seeds")
        assert (verdict.low, verdict.high) == pytest.approx((reference.low, reference.high))
        assert verdict.sentence.startswith(f"({claim}) ") and expected in verdict.sentence


@pytest.mark.parametrize("higher_is_better", [False, True], ids=["loss", "accuracy"])
def test_claim_f_uses_the_zero_shot_metric_and_leaves_out_the_pivot(higher_is_better):
    for effect, expected in ((CLEAR, SUPPORTED), ([-e for e in CLEAR], CONTRADICTED), (NOISY, INCONCLUSIVE)):
        transfer = _figures(higher_is_better, "joint_all_ls", "joint_all_meta_ls", ["fr", "sw", "te"], effect)
        verdicts = claim_verdicts(_figures(False, "joint_all", "mono", [], CLEAR), GROUPS, False, pivot="en",
                                  transfer_values=transfer, transfer_higher_is_better=higher_is_better)
        verdict = _verdict(verdicts, "f")
        assert verdict.status == expected
        assert verdict.languages == ("fr", "sw", "te")
        assert verdict.effect == pytest.approx(np.mean(effect))


def test_claim_f_is_not_tested_without_zero_shot_figures():
    verdict = _verdict(claim_verdicts(_figures(False, "joint_all", "mono", [], CLEAR), GROUPS, False), "f")
    assert verdict.status == NOT_TESTED and verdict.effect is None


def test_claim_c_needs_one_language_clearly_worse_with_bonferroni():
    values = _figures(False, "joint_pair", "mono", [], CLEAR)
    values["joint_pair"]["sw"] = [BASE["sw"] + e for e in CLEAR]  # clearly worse in sw only
    values["joint_pair"]["fr"] = [BASE["fr"] + e for e in NOISY]
    verdict = _verdict(claim_verdicts(values, GROUPS, False, pivot="en"), "c")
    assert verdict.status == SUPPORTED and verdict.languages == ("sw",)
    # 3 languages: each CI at 1 - 0.05/3
    expected = stats.ttest_1samp(CLEAR, 0.0).confidence_interval(1 - 0.05 / 3)
    assert (verdict.low, verdict.high) == pytest.approx((expected.low, expected.high))
    better_everywhere = _figures(False, "mono", "joint_pair", ["fr", "sw", "te"], CLEAR)
    assert _verdict(claim_verdicts(better_everywhere, GROUPS, False, pivot="en"), "c").status == CONTRADICTED
    mixed = _figures(False, "joint_pair", "mono", ["fr", "sw", "te"], NOISY)
    assert _verdict(claim_verdicts(mixed, GROUPS, False, pivot="en"), "c").status == INCONCLUSIVE


def _ratio_record(losses):
    return {"kind": "ratio", "value": float(np.mean(losses)), "baseline": None,
            "examples": [[loss * 10, 10] for loss in losses]}


def test_one_seed_uses_a_bootstrap_over_examples():
    rng = np.random.default_rng(0)
    mono_losses = {c: BASE[c] + 0.05 * rng.standard_normal(60) for c in GROUPS["high"]}
    values = {"mono": {c: [float(np.mean(v))] for c, v in mono_losses.items()}}
    records = {"mono": {c: {0: _ratio_record(v)} for c, v in mono_losses.items()}}
    for name, shift in (("worse", 0.3), ("same", 0.0)):
        joint = {c: v + shift for c, v in mono_losses.items()}
        values["joint_all"] = {c: [float(np.mean(v))] for c, v in joint.items()}
        records["joint_all"] = {c: {0: _ratio_record(v)} for c, v in joint.items()}
        verdict = _verdict(claim_verdicts(values, GROUPS, False, records=records), "a")
        assert verdict.estimate.unit == "examples" and verdict.estimate.n == 4 * 60
        assert verdict.effect == pytest.approx(shift)
        assert verdict.status == (SUPPORTED if shift else INCONCLUSIVE), verdict.sentence


def test_one_seed_without_records_uses_the_languages_as_the_sample():
    values = {"mono": {c: [BASE[c]] for c in LANGUAGES}, "joint_all": {c: [BASE[c] + 0.2] for c in LANGUAGES}}
    values["joint_all"]["fr"] = [BASE["fr"] + 0.25]
    verdict = _verdict(claim_verdicts(values, GROUPS, False), "a")
    assert verdict.estimate.unit == "languages" and verdict.estimate.n == 2
    assert verdict.effect == pytest.approx(0.225)
    assert verdict.status == INCONCLUSIVE  # two languages: t(1) interval is wide, includes 0 here
    single = {"mono": {"en": [3.0]}, "joint_all": {"en": [3.2]}}
    only = _verdict(claim_verdicts(single, {"high": ["en"], "low": []}, False), "a")
    assert only.status == INCONCLUSIVE and only.low is None and "no CI" in only.sentence


def test_missing_variants_and_groups_are_not_tested_and_unpaired_seeds_refused():
    verdicts = claim_verdicts({"mono": {"en": [3.0, 3.1]}}, {"high": ["en"], "low": []}, False)
    assert [v.status for v in verdicts] == [NOT_TESTED] * 6
    assert "no low-resource language" in verdicts[1].sentence
    with pytest.raises(ValueError, match="joint_all/en has 2 seeds but mono/en has 3"):
        claim_verdicts({"mono": {"en": [3.0, 3.1, 3.2]}, "joint_all": {"en": [3.0, 3.1]}}, GROUPS, False)


def test_the_report_section_fits_100_columns():
    values = _figures(False, "joint_all", "mono", LANGUAGES, CLEAR)
    text = format_verdicts(claim_verdicts(values, GROUPS, False, pivot="en"))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert sum(line.startswith("- (") for line in text.splitlines()) == 6


def test_records_missing_for_a_language_fall_back_to_the_languages_not_a_partial_bootstrap():
    values = {"mono": {"en": [3.0], "fr": [3.2]}, "joint_all": {"en": [3.3], "fr": [3.4]}}
    records = {"mono": {"en": {0: _ratio_record([3.0] * 5)}}, "joint_all": {"en": {0: _ratio_record([3.3] * 5)}}}
    verdict = _verdict(claim_verdicts(values, GROUPS, False, records=records), "a")
    assert verdict.estimate.unit == "languages" and verdict.languages == ("en", "fr")
    assert verdict.effect == pytest.approx(0.25)


def test_a_verdict_comes_only_from_runs_that_converged():
    values = _figures(False, "joint_all", "mono", GROUPS["high"], CLEAR)
    runs = {f"mono-{c}/seed{s}": True for c in LANGUAGES for s in range(3)}
    runs.update({f"{v}/seed{s}": True for v in ("joint_all", "joint_all_ls", "joint_all_meta_ls") for s in range(3)})
    runs.update({f"joint_pair-{c}/seed{s}": True for c in LANGUAGES for s in range(3)})
    converged = claim_verdicts(values, GROUPS, higher_is_better=False, pivot="en", seeds=[0, 1, 2],
                               convergence=runs)
    assert _verdict(converged, "a").status == SUPPORTED
    assert _verdict(converged, "a").runs == ("joint_all/seed0", "joint_all/seed1", "joint_all/seed2",
                                             "mono-en/seed0", "mono-fr/seed0", "mono-en/seed1", "mono-fr/seed1",
                                             "mono-en/seed2", "mono-fr/seed2")
    runs["mono-fr/seed1"] = runs["joint_all/seed2"] = False
    withheld = claim_verdicts(values, GROUPS, higher_is_better=False, pivot="en", seeds=[0, 1, 2],
                              convergence=runs)
    a = _verdict(withheld, "a")
    assert a.status == NO_VERDICT and a.effect == pytest.approx(_verdict(converged, "a").effect)  # kept in JSON
    assert a.sentence == ("(a) negative interference hits high-resource languages: no verdict: 2 of 9 runs did "
                          "not converge (joint_all/seed2, mono-fr/seed1).")
    assert _verdict(withheld, "e").status == _verdict(converged, "e").status  # (e) uses neither run
    assert _verdict(withheld, "d").status == NO_VERDICT  # JointAll's seed 2
    text = format_verdicts(withheld)
    assert "- (a) negative interference hits high-resource languages: no verdict: 2 of 9 runs" in text
    tally = " ".join(verdict_tally({"x": withheld}).split())
    assert "comparisons were withheld: they draw on runs that did not converge" in tally
    # Runs without a learning curve (unknown to the map) do not withhold a verdict.
    assert _verdict(claim_verdicts(values, GROUPS, higher_is_better=False, seeds=[0, 1, 2], convergence={}),
                    "a").status == SUPPORTED


def _fixed(claim, status, effect=None, low=None, high=None):
    return Verdict(claim, status, Estimate(effect, low, high, "t", 3, "seeds"), ("lo",), f"({claim}) ...")


def test_the_tally_counts_distinct_tests_and_the_chance_expectation():
    sections = {
        "share0": [_fixed("a", SUPPORTED, 0.10, 0.05, 0.15), _fixed("b", INCONCLUSIVE, -0.03, -0.15, 0.08),
                   _fixed("c", INCONCLUSIVE, -0.03, -0.15, 0.08),  # (b)'s figure again: one test
                   _fixed("d", NOT_TESTED)],
        "share1": [_fixed("a", CONTRADICTED, -0.10, -0.20, -0.01), _fixed("c", INCONCLUSIVE, -0.03, -0.15, 0.08)],
    }
    text = " ".join(verdict_tally(sections, what="conditions").split())
    assert text.startswith("Across the 2 conditions, 4 distinct tests of the claims: 1 supported, 1 contradicted, "
                           "2 inconclusive.")
    assert "about 0.2 of 4 would be supported or contradicted by chance alone (2 were)" in text
    assert all(len(line) <= 100 for line in verdict_tally(sections).splitlines())
    assert verdict_tally({"share0": [_fixed("d", NOT_TESTED)]}) == ""
    one = " ".join(verdict_tally({"share0": sections["share0"]}, what="conditions").split())
    assert one.startswith("In the one condition, 2 distinct tests of the claims: 1 supported, 0 contradicted, ")
