"""A verdict per claim of the paper, from paired differences and their 95% CIs (scipy.stats).

The claims (Wang, Lipton & Tsvetkov 2020), each turned into one paired
difference between two variants, oriented so that a positive effect is what
the claim says:

=====  ==============================================  ===================================
claim  in words                                        effect (> 0 supports the claim)
=====  ==============================================  ===================================
a      negative interference hits high-resource langs  Mono better than JointAll, high group
b      it also hits low-resource languages             Mono better than JointAll, low group
c      JointPair can be worse than Mono                Mono better than JointPair, in at
                                                       least one language (Bonferroni)
d      LS layers reduce interference                   JointAll+LS better than JointAll
e      Meta LS reduces it more than LS                 +Meta LS better than +LS
f      Meta LS improves zero-shot transfer             +Meta LS better than the reference
                                                       (+LS) on a zero-shot metric
=====  ==============================================  ===================================

"Better" follows the metric's direction, stated by the caller
(``higher_is_better``: False for a loss, True for an accuracy), so a claim
never depends on the sign convention of the metric.

The input is plain data, the shape `study_table.cell_values` returns:
``{variant: {language: [per-seed values]}}`` (values of the same seed at the
same position in every list) and the groups ``{"high": [...], "low": [...]}``.
The sample a CI is computed from:

- two or more seeds: per seed, the effect averaged over the claim's
  languages; the mean and the one-sample t interval of those differences
  (`tf_metaling.estimates.t_estimate`);
- one seed with per-example records (``records``: the study's
  ``results["records"][metric]``, ratio records of `tf_metaling.estimates`):
  a percentile bootstrap over the test examples, each run's examples
  resampled independently (`tf_metaling.estimates.ratio_difference_estimate`);
- one seed without records: the t interval over the claim's languages
  (``n`` languages), when it has two or more.

A verdict is *supported* when the whole 95% CI lies above 0, *contradicted*
when it lies below 0, *inconclusive (CI includes 0)* otherwise, and *not
tested* when a variant or group it needs has no figures. A verdict comes only
from converged runs: given each run's convergence (``convergence``, by run
name), a comparison that draws on a run that did not converge is *no verdict*,
and its sentence says how many of its runs did not converge (its estimate is
kept in the JSON, not stated as a finding).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import textwrap

import numpy as np

from tf_metaling.configs.variants import VARIANT_NAMES as TITLES
from tf_metaling.study.plan import run_name
from tf_metaling.estimates import CONFIDENCE, Estimate, ratio_difference_estimate, t_estimate, worse_by

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive (CI includes 0)"
NOT_TESTED = "not tested"
NO_VERDICT = "no verdict"  # some run the comparison draws on did not converge

CLAIMS = {
    "a": "negative interference hits high-resource languages",
    "b": "negative interference also hits low-resource languages",
    "c": "JointPair can be worse than Mono",
    "d": "LS layers reduce interference",
    "e": "Meta LS reduces interference more than LS",
    "f": "Meta LS improves zero-shot transfer",
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One claim's verdict: its status, the `Estimate` of its effect (None when not tested), in words.

    The effect is in the metric's units, positive when the claim holds;
    ``languages`` are the languages it averages over.
    """

    claim: str
    status: str
    estimate: Optional[Estimate]
    languages: tuple
    sentence: str
    runs: tuple = ()  # the runs the comparison draws on (run names), when known

    @property
    def effect(self) -> Optional[float]:
        return self.estimate.value if self.estimate else None

    @property
    def low(self) -> Optional[float]:
        return self.estimate.low if self.estimate else None

    @property
    def high(self) -> Optional[float]:
        return self.estimate.high if self.estimate else None

    def as_dict(self) -> dict:
        estimate = self.estimate.as_dict() if self.estimate else {}
        return {"claim": self.claim, "status": self.status, "effect": self.effect, "low": self.low,
                "high": self.high, "n": estimate.get("n", 0), "unit": estimate.get("unit", ""),
                "method": self.estimate.describe() if self.estimate else "none",
                "p_value": estimate.get("p_value"), "languages": list(self.languages),
                "sentence": self.sentence, "title": CLAIMS[self.claim], "runs": list(self.runs)}


def status_of(low: Optional[float], high: Optional[float]) -> str:
    """supported (CI above 0), contradicted (below 0), or inconclusive (includes 0, or no CI)."""
    if low is None or high is None or low <= 0.0 <= high:
        return INCONCLUSIVE
    return SUPPORTED if low > 0.0 else CONTRADICTED


def _per_seed_lists(values, variant, language):
    per_seed = values.get(variant, {}).get(language)
    if per_seed is None:
        return None
    per_seed = list(per_seed)
    if any(v is None for v in per_seed) or not per_seed:
        raise ValueError(f"verdicts: {variant}/{language} has a missing per-seed value: {per_seed}.")
    return per_seed


def _paired(values, worse_variant, better_variant, languages):
    """``{language: (worse values, better values)}`` for the languages both variants have."""
    pairs = {}
    for code in languages:
        a = _per_seed_lists(values, worse_variant, code)
        b = _per_seed_lists(values, better_variant, code)
        if a is None or b is None:
            continue
        if len(a) != len(b):
            raise ValueError(
                f"verdicts: {worse_variant}/{code} has {len(a)} seeds but {better_variant}/{code} has "
                f"{len(b)}; per-seed values must be paired by seed."
            )
        pairs[code] = (a, b)
    return pairs


def _single_record(records, variant, code):
    per_seed = (records or {}).get(variant, {}).get(code)
    if not per_seed:
        return None
    if len(per_seed) != 1:
        raise ValueError(
            f"verdicts: {variant}/{code} has {len(per_seed)} seeds; a bootstrap needs exactly one."
        )
    record = next(iter(per_seed.values()))
    if record.get("kind") != "ratio":
        raise ValueError(f"verdicts: {variant}/{code} record of kind {record.get('kind')!r}; need 'ratio'.")
    return np.asarray(record["examples"], dtype=float).reshape(-1, 2)


def bootstrap_interval(records, worse_variant, better_variant, languages, higher_is_better: bool,
                       seed: int = 0) -> Optional[Estimate]:
    """One seed: bootstrap CI of the language-averaged effect over each run's test examples.

    None unless every language has the records of both variants (never a CI of a partial average).
    """
    pairs = []
    for code in languages:
        a = _single_record(records, worse_variant, code)
        b = _single_record(records, better_variant, code)
        if a is None or b is None:
            return None
        pairs.append((a, b))
    if not pairs:
        return None
    return ratio_difference_estimate(pairs, higher_is_better, seed)


def difference_interval(values, worse_variant, better_variant, languages, higher_is_better: bool,
                        records=None) -> tuple:
    """``(interval or None, languages used)`` of "`worse_variant` is worse than `better_variant`"."""
    pairs = _paired(values, worse_variant, better_variant, languages)
    if not pairs:
        return None, ()
    used = tuple(pairs)
    seeds = {len(a) for a, _ in pairs.values()}
    if len(seeds) != 1:
        raise ValueError(f"verdicts: {worse_variant} vs {better_variant}: languages have different seed "
                         f"counts {sorted(seeds)}.")
    if seeds.pop() >= 2:
        per_seed = np.mean([worse_by(a, b, higher_is_better) for a, b in pairs.values()], axis=0)
        return t_estimate(per_seed, "seeds"), used
    if records is not None:
        interval = bootstrap_interval(records, worse_variant, better_variant, used, higher_is_better)
        if interval is not None:
            return interval, used
    per_language = [float(worse_by(a[0], b[0], higher_is_better)) for a, b in pairs.values()]
    return t_estimate(per_language, "languages"), used


def _describe(effect_text, interval: Optional[Estimate]) -> str:
    if interval is None:
        return ""
    text = f"{effect_text} by {interval.value:.3f}"
    if interval.low is None:
        return text + f" (no CI: n={interval.n})"
    return text + f" (95% CI {interval.low:.3f} to {interval.high:.3f}; {interval.describe()})"


def _verdict(claim, interval, used, effect_text, reason_if_missing) -> Verdict:
    if interval is None:
        status = NOT_TESTED
        sentence = f"({claim}) {CLAIMS[claim]}: {NOT_TESTED} ({reason_if_missing})."
        return Verdict(claim, status, None, (), sentence)
    status = status_of(interval.low, interval.high)
    sentence = f"({claim}) {CLAIMS[claim]}: {status}; {_describe(effect_text, interval)}."
    return Verdict(claim, status, interval, tuple(used), sentence)


def _languages(values, *variants) -> list:
    seen = []
    for variant in variants:
        for code in values.get(variant, {}):
            if code not in seen:
                seen.append(code)
    return seen


def _existential(claim, values, worse_variant, better_variant, languages, higher_is_better, records,
                 effect_text) -> Verdict:
    """Claim (c): worse in at least one language, each language's CI Bonferroni-corrected."""
    pairs = _paired(values, worse_variant, better_variant, languages)
    if not pairs:
        return _verdict(claim, None, (), effect_text,
                        f"no language has both {TITLES[worse_variant]} and {TITLES[better_variant]}")
    confidence = 1.0 - (1.0 - CONFIDENCE) / len(pairs)
    intervals = {}
    for code, (a, b) in pairs.items():
        if len(a) >= 2:
            intervals[code] = t_estimate(worse_by(a, b, higher_is_better), "seeds", confidence)
        else:
            boot = bootstrap_interval(records, worse_variant, better_variant, [code], higher_is_better)
            intervals[code] = boot or Estimate(float(worse_by(a[0], b[0], higher_is_better)), n=1, unit="seeds")
    statuses = {code: status_of(i.low, i.high) for code, i in intervals.items()}
    if any(s == SUPPORTED for s in statuses.values()):
        status = SUPPORTED
        code = max((c for c in intervals if statuses[c] == SUPPORTED), key=lambda c: intervals[c].low)
    elif all(s == CONTRADICTED for s in statuses.values()):
        status = CONTRADICTED
        code = max(intervals, key=lambda c: intervals[c].high)
    else:
        status = INCONCLUSIVE
        code = max(intervals, key=lambda c: intervals[c].value)
    chosen = intervals[code]
    where = "largest" if status == SUPPORTED else "closest to holding"
    scope = (f"in {code}, the language where it is {where}"
             f" ({len(pairs)} languages, Bonferroni-corrected CIs)")
    sentence = f"({claim}) {CLAIMS[claim]}: {status}; {_describe(effect_text, chosen)} {scope}."
    return Verdict(claim, status, chosen, (code,), sentence)


def runs_of(variants, languages, seeds) -> tuple:
    """The run names behind `variants`' figures of `languages` for `seeds` (Mono and JointPair: one per language)."""
    names = []
    for variant in variants:
        for seed in seeds:
            if variant in ("mono", "joint_pair"):
                names += [run_name(variant, code, seed) for code in languages]
            else:
                names.append(run_name(variant, None, seed))
    return tuple(dict.fromkeys(names))


def _only_from_converged(verdict: Verdict, runs: tuple, convergence: Optional[Mapping[str, bool]]) -> Verdict:
    """`verdict` as it stands if every run it draws on converged; else "no verdict", saying how many did not.

    Runs `convergence` does not know (no learning curve was kept) do not withhold a verdict.
    """
    known = [name for name in runs if convergence is not None and name in convergence]
    verdict = dataclasses.replace(verdict, runs=tuple(known))
    failed = [name for name in known if not convergence[name]]
    if verdict.status == NOT_TESTED or not failed:
        return verdict
    sentence = (f"({verdict.claim}) {CLAIMS[verdict.claim]}: {NO_VERDICT}: {len(failed)} of {len(known)} runs "
                f"did not converge ({', '.join(failed)}).")
    return dataclasses.replace(verdict, status=NO_VERDICT, sentence=sentence)


def claim_verdicts(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    groups: Mapping[str, Sequence[str]],
    higher_is_better: bool,
    *,
    metric_name: str = "held-out MLM loss",
    pivot: Optional[str] = None,
    records: Optional[Mapping] = None,
    transfer_values: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None,
    transfer_higher_is_better: bool = True,
    transfer_metric_name: str = "zero-shot accuracy",
    transfer_records: Optional[Mapping] = None,
    transfer_reference: str = "joint_all_ls",
    pair_variant: str = "joint_pair",
    seeds: Sequence = (),
    convergence: Optional[Mapping[str, bool]] = None,
) -> list:
    """The verdicts of claims (a)-(f), in order.

    Args:
        values: ``{variant: {language: [per-seed values]}}`` of the interference
            metric (e.g. held-out MLM loss); variants named as in the study
            (``mono``, ``joint_pair``, ``joint_all``, ``joint_all_ls``,
            ``joint_all_meta_ls``).
        groups: ``{"high": [codes], "low": [codes]}``.
        higher_is_better: the direction of `values`' metric (False for a loss).
        metric_name: how sentences name the metric.
        pivot: the pivot language (English): left out of claim (c), whose
            JointPair models pair every language with it, and of claim (f).
        records: optional ``{variant: {language: {seed: ratio record}}}`` of
            the same metric, for the bootstrap when there is one seed.
        transfer_values / transfer_records / transfer_higher_is_better /
            transfer_metric_name: the zero-shot metric of claim (f), same
            shapes; without it (f) is "not tested".
        transfer_reference: the variant Meta LS is compared with in (f).
        pair_variant: the variant whose figures claim (c) reads as JointPair's (with two
            languages JointAll is JointPair: the synthetic control passes ``joint_all``).
        seeds / convergence: the seeds of the per-seed values and ``{run name:
            converged}``; with them a verdict drawing on a run that did not converge is
            "no verdict".
    """
    high, low = list(groups.get("high", [])), list(groups.get("low", []))
    results = []

    def add(verdict, variants, languages):
        results.append(_only_from_converged(verdict, runs_of(variants, languages, seeds), convergence))

    for claim, group, name in (("a", high, "high-resource"), ("b", low, "low-resource")):
        interval, used = difference_interval(values, "joint_all", "mono", group, higher_is_better, records)
        add(_verdict(claim, interval, used, f"JointAll's {metric_name} is worse than Mono's on {name} languages",
                     f"no {name} language has both JointAll and Mono figures"), ("joint_all", "mono"), used)
    pair_title = TITLES[pair_variant]
    others = [c for c in _languages(values, pair_variant, "mono") if c != pivot]
    add(_existential("c", values, pair_variant, "mono", others, higher_is_better, records,
                     f"{pair_title}'s {metric_name} is worse than Mono's"), (pair_variant, "mono"), others)
    everyone = _languages(values, "joint_all", "joint_all_ls", "joint_all_meta_ls")
    for claim, worse_variant, better_variant in (("d", "joint_all", "joint_all_ls"),
                                                 ("e", "joint_all_ls", "joint_all_meta_ls")):
        interval, used = difference_interval(values, worse_variant, better_variant, everyone,
                                             higher_is_better, records)
        add(_verdict(claim, interval, used,
                     f"{TITLES[better_variant]}'s {metric_name} is better than {TITLES[worse_variant]}'s "
                     f"(mean over {len(used)} languages)",
                     f"no language has both {TITLES[worse_variant]} and {TITLES[better_variant]} figures"),
            (worse_variant, better_variant), used)
    transfer = transfer_values or {}
    reference = TITLES.get(transfer_reference, transfer_reference)
    targets = [c for c in _languages(transfer, transfer_reference, "joint_all_meta_ls") if c != pivot]
    interval, used = difference_interval(transfer, transfer_reference, "joint_all_meta_ls", targets,
                                         transfer_higher_is_better, transfer_records)
    add(_verdict("f", interval, used,
                 f"JointAll+Meta LS's {transfer_metric_name} is better than {reference}'s"
                 f" (mean over {len(used)} target languages)",
                 f"no zero-shot figures of both {reference} and JointAll+Meta LS"),
        (transfer_reference, "joint_all_meta_ls"), used)
    return results


def format_verdicts(verdicts: Sequence[Verdict], width: int = 100) -> str:
    """The report's closing section: one wrapped line per claim (Markdown list)."""
    lines = [textwrap.fill("Verdicts on the paper's claims (95% CIs; positive effect = the claim's direction; "
                           "a verdict only from runs that converged):", width), ""]
    for verdict in verdicts:
        words, line = verdict.sentence.split(), "-"
        for word in words:
            if len(line) + 1 + len(word) > width:
                lines.append(line)
                line = "  " + word
            else:
                line = f"{line} {word}"
        lines.append(line)
    return "\n".join(lines)


def verdict_tally(sections: Mapping[str, Sequence[Verdict]], what: str = "sections",
                  width: int = 100) -> str:
    """How many claims a multi-section report tested, and how many a 95% CI would flag by chance.

    `sections`: ``{section name: its verdicts}`` (the control's conditions; `what`
    names them in the sentence). A verdict that repeats another of its section's
    figure and CI (with two languages, claim (c) reads the same comparison as
    (b)) is counted once. Each test's CI misses the truth 5% of the time, so with
    no effect anywhere about 1 test in 20 comes out supported or contradicted;
    the sentence says so beside the counts, so that one such verdict among many
    is read as a lead, not a finding.
    """
    tests, withheld = {}, set()
    for section, verdicts in sections.items():
        for verdict in verdicts:
            key = (section, verdict.effect, verdict.low, verdict.high)
            if verdict.status == NO_VERDICT:
                withheld.add(key)
            elif verdict.status != NOT_TESTED:
                tests.setdefault(key, verdict.status)
    scope = f"Across the {len(sections)} {what}" if len(sections) != 1 else f"In the one {what.removesuffix('s')}"
    if not tests:
        return textwrap.fill(f"{scope}, no verdict: every comparison draws on a run "
                             f"that did not converge ({len(withheld)} withheld).", width) if withheld else ""
    statuses = list(tests.values())
    counts = {status: statuses.count(status) for status in (SUPPORTED, CONTRADICTED, INCONCLUSIVE)}
    chance = (1.0 - CONFIDENCE) * len(statuses)
    flagged = counts[SUPPORTED] + counts[CONTRADICTED]
    return textwrap.fill(
        f"{scope}, {len(statuses)} distinct tests of the claims: "
        f"{counts[SUPPORTED]} supported, {counts[CONTRADICTED]} contradicted, "
        f"{counts[INCONCLUSIVE]} inconclusive. At {CONFIDENCE:.0%} confidence, with no effect anywhere, "
        f"about {chance:.1f} of {len(statuses)} would be supported or contradicted by chance alone "
        f"({flagged} were); {what} that share runs (the same Mono baseline) do not even give "
        "independent tests. A lone supported or contradicted verdict among inconclusive ones is a lead "
        "to rerun with more seeds, not a finding."
        + (f" {len(withheld)} more comparisons were withheld: they draw on runs that did not converge."
           if withheld else ""), width)
