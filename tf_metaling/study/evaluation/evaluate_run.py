"""Every figure of one finished run, example by example, and its convergence.

`evaluate_run` restores a run's model and tokenizer and computes, per
language, a record for every metric its study asks for (each record keeps
per-example figures, so every figure gets a 95% CI, `tf_metaling.estimates`):
held-out MLM loss and masked-token accuracy, X -> pivot retrieval, the
classification probe and the tagging tasks of a pretrained model; a
fine-tuned classifier's accuracy in every language for a fine-tuning study.
`run_convergence` reads the run's learning curve and judges it with the
project's `ConvergenceRule`.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tf_metaling import checkpoints
from tf_metaling.data.synthetic import SyntheticTokenizer
from tf_metaling.estimates import example_estimate
from tf_metaling.study.evaluation.classification import (
    finetuned_classification_records,
    probe_classification_records,
)
from tf_metaling.study.evaluation.mlm import mlm_records
from tf_metaling.study.evaluation.retrieval import retrieval_records
from tf_metaling.study.evaluation.tagging import fine_tuned_tagger_records
from tf_metaling.training.convergence import ConvergenceRule, LearningCurve
from tf_metaling.training.experiment import LEARNING_CURVE_FILE
from tf_metaling.training.mlm_inputs import build_mlm_inputs


@dataclasses.dataclass
class StudyTasks:
    """The downstream tasks a study evaluates, loaded and checked from its corpus once."""

    retrieval: bool  # X -> pivot retrieval (the corpus has aligned text and the study asks for it)
    classification: dict  # {name: ClassificationTask}, balanced test sets
    tagging: dict  # {name: TaggingTask} of the study's languages
    finetune_task: str = ""  # fine-tuning studies: the classification task trained on


def evaluation_settings(study) -> dict:
    """What decides a run's figures besides its training config (stored with them in results.json)."""
    return {"pivot": study.pivot, **study.evaluation.as_dict()}


def evaluate_run(run_dir: str, config, study, corpus, tasks: StudyTasks) -> dict:
    """``{"records": {metric: {code: record}}, "step": ..., "evaluation": ...}`` of one trained run.

    Args:
        run_dir: the run's model directory.
        config: the run's `ExperimentConfig`.
        study: the study's `StudyConfig` (pivot, evaluation sizes).
        corpus: the study's `Corpus`.
        tasks: the study's `StudyTasks`.
    """
    model = checkpoints.restore_model(run_dir)
    tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(run_dir))
    if corpus.synthetic is not None:  # each language's ids, as in pretraining
        tokenizer = SyntheticTokenizer(tokenizer, corpus.synthetic, model.language_vocabulary.codes)
    length = config.data.sequence_length
    step = int(os.path.basename(checkpoints.latest_checkpoint(run_dir)).rsplit("-", 1)[1])
    evaluation = study.evaluation
    records = {}
    if study.finetuning:
        task = tasks.classification[tasks.finetune_task]
        records[f"finetuned:{tasks.finetune_task}"] = finetuned_classification_records(model, tokenizer, task, length)
    else:
        inputs = build_mlm_inputs(config.data, run_dir, config.runtime.seed, corpus=corpus)
        eval_batches = inputs.eval_batches()
        for code, metrics in mlm_records(model, eval_batches, inputs.accuracy_baselines(eval_batches)).items():
            for metric, record in metrics.items():
                records.setdefault(metric, {})[code] = record
    if tasks.retrieval:
        records["retrieval"] = retrieval_records(model, tokenizer, corpus, length, study.pivot,
                                                 evaluation.retrieval_pairs)
    if not study.finetuning:
        for name, task in tasks.classification.items():
            records[f"classification:{name}"] = probe_classification_records(
                model, tokenizer, task, length, evaluation.classification_train, seed=config.runtime.seed,
                protocol=evaluation.classification_protocol)
        records.update(fine_tuned_tagger_records(run_dir, config, os.path.join(run_dir, "taggers"), tasks.tagging,
                                                 list(config.data.languages), evaluation))
    return {"records": records, "step": step, "evaluation": evaluation_settings(study)}


def run_convergence(run_dir: str, accuracy_records: dict | None = None) -> dict:
    """The run's learning curve and `ConvergenceRule`'s verdict on it (empty without a curve).

    `accuracy_records`: ``{language: masked-token accuracy record}`` of the run; a
    language whose accuracy's 95% CI is not above its most-frequent-token baseline
    makes a flat curve "not converged (unigram plateau)".
    """
    path = os.path.join(run_dir, LEARNING_CURVE_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as file:
        saved = json.load(file)
    curve = LearningCurve(saved["steps"], saved["losses"])
    above_baseline = {}
    for code, record in (accuracy_records or {}).items():
        if record.get("baseline") is None:
            continue
        estimate = example_estimate(record)
        above_baseline[code] = bool(estimate.has_interval and estimate.low > record["baseline"])
    return {"curve": {**curve.as_dict(), "stopped_early": saved.get("stopped_early", False),
                      "train_steps": saved.get("train_steps"),
                      "restored_best_step": saved.get("restored_best_step")},
            "convergence": ConvergenceRule().check(curve, above_baseline).as_dict()}
