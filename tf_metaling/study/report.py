"""A study's report: its tables, learning curves, verdicts and interference report, from its results.

`write_report(study, results)` writes ``table.md`` (what produced it, the
corpus and budget, one table per metric, the runs' convergence, the verdicts
on the paper's claims), ``results.json`` (the results with every cell's
estimate), ``curves.png`` and, for a pretraining study with a JointAll run,
the interference report (`tf_metaling.interference`). Everything is generated
from the results dict; nothing is typed by hand.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import get_config
from tf_metaling.interference import analyze_model_dir
from tf_metaling.study import tables
from tf_metaling.study.plan import PlannedRun, run_config
from tf_metaling.study.results import SCRATCH
from tf_metaling.study.study_directory import RESULTS_FILE, TABLE_FILE, config_differences
from tf_metaling.study.verdicts import claim_verdicts, format_verdicts
from tf_metaling.training.convergence import LearningCurve, plot_learning_curves
from tf_metaling.training.mlm_inputs import build_mlm_inputs


def configuration_line(study) -> str:
    """Which configuration produced the report: its name, how it differs from the registered one, its file."""
    config = study.config
    words = f"Configuration: {config.name or 'unnamed'}"
    try:
        registered = get_config(config.name).as_dict() if config.name else None
    except KeyError:
        registered = None
    if registered is not None:
        changed = config_differences(registered, config.as_dict(), ignore=())
        words += (" as registered" if not changed else
                  " with " + ", ".join(f"{key}={new!r}" for key, (_, new) in changed.items()))
    # The file by its name (a long absolute path would not fold to the tables' width).
    return words + f" (all of it in the study directory's {os.path.basename(study.directory.config_path)})."


def budget_line(study) -> str:
    config = study.config
    steps = config.run.trainer.train_steps
    if config.finetuning:
        preset = config.run.finetune.init_preset
        source = ("the pretrained encoder 'builtin' (the built-in 4-bit multilingual-e5-small, not bit-equal to "
                  "the original)" if preset == "builtin" else f"the pretrained encoder in {preset}")
        return (f"Fine-tuned from {source}: {steps} steps on {config.pivot} only, then tested on every language "
                "(zero-shot). +Meta LS's meta loss uses the task's labelled validation examples of every language "
                "(never the test split), so its figures are not strictly zero-shot.")
    if config.budget == "per_language":
        return (f"Training budget: per language (a run over n languages trains n x {steps} steps, so each "
                "language gets about as many batches as in its Mono run).")
    return f"Training budget: total (every run trains {steps} steps, shared by its languages)."


def study_verdicts(study, results: dict) -> list:
    """The paper's claims (a)-(f) judged on held-out MLM loss and a zero-shot metric (`verdicts`)."""
    records = results["records"]
    if "mlm_loss" not in records:
        return []
    zero_shot = [m for m in records if m.startswith("classification:")
                 and study.config.evaluation.classification_protocol == "zero_shot"]
    zero_shot += [m for m in records if m == "retrieval"]
    transfer = zero_shot[0] if zero_shot else None
    return claim_verdicts(
        tables.cell_values(results, "mlm_loss"), results["groups"], higher_is_better=False,
        pivot=study.config.pivot, records=records["mlm_loss"], seeds=results["seeds"],
        convergence=tables.run_convergence(results),
        transfer_values=tables.cell_values(results, transfer) if transfer else None,
        transfer_records=records.get(transfer) if transfer else None,
        transfer_metric_name="zero-shot classification accuracy" if transfer and transfer != "retrieval"
        else "X -> pivot retrieval accuracy",
    )


def plot_curves(study, results: dict) -> Optional[str]:
    """``curves.png``: every run's held-out loss over training, labelled with its verdict."""
    curves = {name: LearningCurve(run["curve"]["steps"], run["curve"]["losses"])
              for name, run in results.get("runs", {}).items() if run["curve"]["steps"]}
    if not curves:
        return None
    return plot_learning_curves(curves, os.path.join(study.output_dir, "curves.png"),
                                title=f"Held-out MLM loss of every run ({study.corpus.kind} corpus)",
                                ylabel="held-out MLM loss, mean over the run's languages")


def write_interference_report(study, results: dict) -> Optional[str]:
    """The interference report of the first seed's JointAll model (pretraining studies)."""
    seed = study.config.seeds[0]
    if study.config.finetuning or study.directory.read_results("joint_all", None, seed) is None:
        return None
    config = run_config(study.config, study.languages, PlannedRun("joint_all", None, seed),
                        study.shared_vocabulary())
    inputs = build_mlm_inputs(config.data, None, config.runtime.seed, corpus=study.corpus)
    perplexities = {
        variant: {code: [math.exp(v) for v in values] for code, values in rows.items()}
        for variant, rows in tables.cell_values(results, "mlm_loss").items() if variant != SCRATCH
    }
    analysis = analyze_model_dir(
        study.directory.run_dir("joint_all", None, seed), inputs.eval_batches(),
        os.path.join(study.output_dir, "report"),
        results=perplexities if "mono" in perplexities else None,
        high_resource=study.groups.get("high", ()), low_resource=study.groups.get("low", ()),
        title=f"Interference between languages ({study.corpus.kind} corpus)",
    )
    return analysis["report_dir"]


def write_report(study, results: dict, log=None) -> dict:
    """Prints and writes the tables; writes the interference report. Returns their paths and the estimates."""
    markdown = "\n\n".join(
        [tables.wrap(configuration_line(study)), tables.wrap(f"Corpus: {results['corpus']}."),
         tables.wrap(budget_line(study))]
        + tables.study_tables(results)
        + [t for t in [tables.convergence_table(results)] if t])
    curves = plot_curves(study, results)
    if curves:
        markdown += f"\n\nLearning curves: {curves}"
    verdicts = study_verdicts(study, results)
    if verdicts:
        markdown += "\n\n" + format_verdicts(verdicts)
    table_path = atomic_write_text(os.path.join(study.output_dir, TABLE_FILE), markdown + "\n")
    summary = {metric: tables.effect_summary(results, metric) for metric in results["records"]}
    atomic_write_text(os.path.join(study.output_dir, RESULTS_FILE),
                                  json.dumps({**results, "configuration": study.config.as_dict(),
                                              "estimates": summary}, indent=1))
    if log is not None:
        print(markdown, file=log, flush=True)
    report_dir = write_interference_report(study, results)
    if log is not None:
        print(f"\ntable: {table_path}\nreport: {report_dir}", file=log, flush=True)
    return {"table": table_path, "report": report_dir, "estimates": summary}
