"""The synthetic control: the paper's comparison where what languages share is known exactly.

Two languages made from one source text (`SyntheticCorpus`): ``en``, the
text itself, and ``lo``, a derived low-resource language. Each *condition*
sets what ``lo`` shares with ``en`` and how much text it gets
(`ControlConfig`): the shared-vocabulary sweep (a fraction of the ids kept,
and once the reversed word order, "same words, different grammar"), the
resource sweep (1/1, 1/10, 1/100 of ``en``'s text), and optionally model
widths (the interference-vs-capacity curve, `capacity_curve`).

Every condition is one `ComparisonStudy` (the same plan, runner, evaluation,
results and tables as the real study) in ``<output_dir>/<condition>``: Mono,
JointAll, JointAll+LS, JointAll+Meta LS (with two languages JointPair *is*
JointAll, so it is not trained twice; claim (c) reads JointAll's figures),
with held-out MLM loss, retrieval (``lo`` -> ``en``: every sentence's
translation is known) and a classification task whose labels come from the
source sentence (trained on ``en``, zero-shot on ``lo``). The summary
(``control.md``) has, per condition, the interference JointAll - Mono per
language with its 95% CI and the verdict on each of the paper's claims.

Mono runs are trained once where several conditions would train the same
model, and their figures serve every such condition: a Mono model sees one
language, and which ids that language uses, or whether its words run
backwards, changes nothing a model of it alone can learn. So Mono ``lo`` is
trained once per resource level (in the resource sweep's condition: share
`sweep_share`, natural order), and Mono ``en`` (the same text, vocabulary and
seed in every condition: the runs are bit-identical) once, in the base
condition, per width.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import StudyConfig, validate_study
from tf_metaling.study import tables
from tf_metaling.study.capacity_curve import capacity_table, plot_capacity_curve
from tf_metaling.study.comparison_study import ComparisonStudy
from tf_metaling.study.report import configuration_line, write_report
from tf_metaling.study.plan import (
    DERIVED,
    SOURCE,
    base_condition,
    control_conditions,
    control_plan,
    learning_rate,
    mono_source,
)
from tf_metaling.study.results import borrow_mono
from tf_metaling.study.runner import run_studies
from tf_metaling.study.treatment_comparison import (
    BASELINES,
    plot_gradient_cosines,
    treatment_table,
    treatment_verdicts,
)
from tf_metaling.study.study_directory import StudyDirectory
from tf_metaling.study.verdicts import claim_verdicts, difference_interval, format_verdicts, verdict_tally

SUMMARY_FILE = "control.md"


class SyntheticControl:
    """Runs (or resumes) every condition's study in `output_dir` and writes the summary."""

    def __init__(self, config: StudyConfig, output_dir: str, log=None, allow_config_change: bool = False):
        self.config = validate_study(config)
        if not config.control.enabled:
            raise ValueError(f"study {config.name}: control.enabled is false; run it as a ComparisonStudy.")
        self.directory = StudyDirectory(output_dir)
        self.output_dir = self.directory.root
        self.allow_config_change = allow_config_change
        self.log = log or sys.stdout
        self.conditions = control_conditions(config)
        self.studies = {
            condition: ComparisonStudy(study, os.path.join(self.output_dir, condition.name), mono_languages,
                                       log=self.log, allow_config_change=allow_config_change)
            for condition, study, mono_languages in control_plan(config)}

    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    def run(self) -> dict:
        """Trains every condition's runs (one pool of ``workers`` processes for all) and collects them."""
        self.directory.claim(self.config, self.allow_config_change)
        started = time.perf_counter()
        self._print(f"{len(self.studies)} conditions: " + "; ".join(c.title for c in self.studies))
        results = run_studies(list(self.studies.values()), self.config.workers, log=self.log)
        collected = dict(zip(self.studies, results))
        for condition in collected:
            for code in (SOURCE, DERIVED):
                source = mono_source(self.config, condition, code)
                if source != condition and source in collected:
                    borrow_mono(collected[condition], collected[source], code)
        self._print(f"the control's runs took {time.perf_counter() - started:.0f} s")
        return collected

    # ------------------------------------------------------------------ summary
    def summary(self, collected: dict) -> str:
        """control.md: per condition the interference and the verdicts; the capacity curve."""
        config = self.config
        seeds = config.seeds
        lines = [tables.wrap(
            f"Synthetic control: {SOURCE} is the source text ({config.control.source}), {DERIVED} a derived "
            f"language; per condition, what {DERIVED} shares with {SOURCE} and its share of the training text. "
            + (f"{len(seeds)} seeds; 95% CIs are t intervals over seeds. " if len(seeds) > 1 else
               "One seed: 95% CIs are percentile bootstraps over the test examples, so seed-to-seed variation is "
               "not included. ")
            + "With two languages JointPair is JointAll, so claim (c) reads JointAll's figures."),
            "", tables.wrap(configuration_line(self))]
        header = ["condition", f"{SOURCE} JointAll-Mono", f"{DERIVED} JointAll-Mono", "runs converged"]
        rows, verdict_rows, everything = [], [], {}
        capacity, capacity_records = {}, {}
        # A condition that is only a Mono source has its figures in the conditions it serves.
        collected = {condition: results for condition, results in collected.items() if condition in self.conditions}
        for condition, results in collected.items():
            values = tables.cell_values(results, "mlm_loss")
            cells = [condition.title]
            for code in (SOURCE, DERIVED):
                cells.append(_difference(values, "joint_all", "mono", code, results["records"].get("mlm_loss")))
            runs = results.get("runs", {})
            cells.append(f"{sum(r['convergence']['converged'] for r in runs.values())}/{len(runs)}")
            rows.append(cells)
            if condition.width:
                capacity[condition.width] = {v: dict(rows_) for v, rows_ in values.items()}
                capacity_records[condition.width] = results["records"].get("mlm_loss")
                continue
            if condition == base_condition(config):
                capacity.setdefault(config.run.model.hidden_dim, {v: dict(rows_) for v, rows_ in values.items()})
                capacity_records.setdefault(config.run.model.hidden_dim, results["records"].get("mlm_loss"))
            verdicts = claim_verdicts(
                values, results["groups"], higher_is_better=False, pivot=SOURCE,
                records=results["records"].get("mlm_loss"), pair_variant="joint_all",
                transfer_values=tables.cell_values(results, "classification:contains_word"),
                transfer_records=results["records"].get("classification:contains_word"),
                transfer_metric_name="zero-shot classification accuracy",
                seeds=results["seeds"], convergence=tables.run_convergence(results),
            )
            everything[condition.name] = [v.as_dict() for v in verdicts]
            verdict_rows.append((condition, verdicts))
        lines += ["", tables.wrap("Interference per condition: JointAll - Mono of the held-out MLM loss (positive = "
                                  "the joint model is worse: negative interference). Held-out MLM loss, nats per "
                                  "masked token (lower is better).")]
        lines += tables.markdown_table(header, rows) + ["* the CI includes 0: no interference can be claimed."]
        for condition, verdicts in verdict_rows:
            lines += ["", f"### {condition.title}", format_verdicts(verdicts)]
        tally = verdict_tally({condition.name: verdicts for condition, verdicts in verdict_rows}, what="conditions")
        if tally:
            lines += ["", tally]
        lines += self._treatments(collected)
        if config.control.widths and capacity:  # without widths there is no curve (the base condition alone)
            rates = ", ".join(f"d={width}: {learning_rate(config, width):g}" for width in sorted(capacity))
            rule = (f"scaled with the width (base width {config.run.model.hidden_dim}, halved when the width "
                    "doubles): " if config.control.width_learning_rate == "scaled" else "the same at every width: ")
            count = f"{len(capacity)} width{'s' if len(capacity) != 1 else ''}"
            lines += ["", tables.wrap(f"Interference against capacity ({count}). Learning rate {rule}{rates}.")]
        if len(capacity) >= 2:
            lines += ["", capacity_table(capacity, metric_name="held-out MLM loss", higher_is_better=False,
                                         records=capacity_records)]
            png = plot_capacity_curve(capacity, os.path.join(self.output_dir, "capacity.png"),
                                      records=capacity_records, metric_name="held-out MLM loss",
                                      higher_is_better=False)
            lines += [f"Capacity curve: {png}"]
        text = "\n".join(lines) + "\n"
        atomic_write_text(os.path.join(self.output_dir, SUMMARY_FILE), text)
        atomic_write_text(os.path.join(self.output_dir, "control.json"),
                                      json.dumps({"verdicts": everything}, indent=1))
        return text

    def _treatments(self, collected: dict) -> list:
        """The treatments' table and the gradient-cosine plot, where the control runs treatments."""
        treated = {condition: results for condition, results in collected.items()
                   if any(v in BASELINES for v in results["variants"]) and not condition.width}
        if not treated:
            return []
        verdicts = {condition.title: treatment_verdicts(
            tables.cell_values(results, "mlm_loss"), results["records"].get("mlm_loss"), (SOURCE, DERIVED),
            results["seeds"], tables.run_convergence(results)) for condition, results in treated.items()}
        lines = ["", treatment_table(verdicts)]
        runs = {condition.title: {variant: [self.studies[condition].directory.run_dir(variant, None, seed)
                                            for seed in self.config.seeds]
                                  for variant in self.studies[condition].config.variants if variant != "mono"}
                for condition in treated}
        try:
            png = plot_gradient_cosines(runs, (SOURCE, DERIVED), os.path.join(self.output_dir, "gradient_cosines.png"))
            lines += ["", f"Gradient cosine between {SOURCE} and {DERIVED} over training: {png}"]
        except ValueError:  # no run kept the probe's log (trainer.probe_interval 0)
            lines += ["", "No gradient cosines over training: the runs did not probe (run.trainer.probe_interval 0)."]
        return lines

    def report(self, collected: dict) -> dict:
        """Every condition's report (quietly), then the summary, printed."""
        for condition, study in self.studies.items():
            write_report(study, collected[condition])
        self._print(self.summary(collected))
        return {"summary": os.path.join(self.output_dir, SUMMARY_FILE)}


def _difference(values, variant, baseline, code, records=None) -> str:
    """``variant - baseline`` in `code` with its 95% CI: t over seeds, or with one seed a bootstrap over examples."""
    a, b = values.get(variant, {}).get(code), values.get(baseline, {}).get(code)
    if not a or not b or len(a) != len(b):
        return "-"
    interval, _ = difference_interval(values, variant, baseline, [code], higher_is_better=False, records=records)
    text = f"{interval.value:+.3f}"
    if interval.low is not None:
        text += f" [{interval.low:+.3f}, {interval.high:+.3f}]" + ("*" if interval.low <= 0 <= interval.high else "")
    return text
