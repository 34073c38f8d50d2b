"""Tagging figures of a run: a tagger fine-tuned per task and language, scored per test sentence.

`fine_tuned_tagger_records` fine-tunes, from a run's model directory (or
from its architecture with random weights: the Scratch baseline), one tagger
per tagging task and language the model knows, in that language
(`tf_metaling.training.finetuning.run_finetuning`), and scores it on the
task's test split with `tagging_records`: UPOS accuracy (words tagged
correctly / words) or NER span F1 (seqeval).
"""

from __future__ import annotations

import copy
import os
import shutil

import tensorflow as tf
from official.modeling import hyperparams

from tf_metaling import checkpoints
from tf_metaling.data.token_tagging import tagging_dataset
from tf_metaling.estimates import ratio_record, span_f1_record
from tf_metaling.models.multilingual_model import TOKEN_LOGITS
from tf_metaling.training.finetuning import run_finetuning


def tagging_records(model, tokenizer, task, language: str, sequence_length: int, batch_size: int = 64) -> dict:
    """The record of a fine-tuned tagger on `task.test[language]`, per sentence.

    Accuracy: words tagged correctly / words (a word's tag is predicted on its
    first subword; words cut off by `sequence_length` count as wrong). Span F1:
    the predicted tag sequence (cut-off words predicted ``O``) for seqeval.
    """
    sentences = task.test[language]
    labels = list(model.token_class_names)
    dataset = tagging_dataset(sentences, tokenizer, model.language_vocabulary, labels, sequence_length, batch_size)

    @tf.function(autograph=False, reduce_retracing=True)
    def predict(batch):
        return tf.argmax(model(batch, training=False, outputs=(TOKEN_LOGITS,))[TOKEN_LOGITS], axis=-1)

    predicted_tags = []
    for batch in dataset:
        predicted = predict(batch).numpy()
        weights = batch["label_weights"].numpy()
        for row, weight in zip(predicted, weights):
            predicted_tags.append([labels[i] for i in row[weight > 0]])
    true_tags = [list(s.tags) for s in sentences]
    predicted_tags = [p + ["O"] * (len(t) - len(p)) for p, t in zip(predicted_tags, true_tags)]
    if task.metric == "span_f1":
        return span_f1_record(true_tags, predicted_tags, baseline=task.baseline(language))
    correct = [sum(p == t for p, t in zip(pred, true)) for pred, true in zip(predicted_tags, true_tags)]
    return ratio_record(correct, [len(t) for t in true_tags], baseline=task.baseline(language))


def fine_tuned_tagger_records(init_dir: str, config, output_dir: str, tasks: dict, languages, evaluation,
                              from_scratch: bool = False) -> dict:
    """``{"tagging:<task>": {code: record}}``: a tagger per task and language, fine-tuned from `init_dir`.

    Args:
        init_dir: the run's model directory (its weights, tokenizer and languages).
        config: the run's `ExperimentConfig`; the tagger keeps its sizes.
        output_dir: where the taggers' model directories go (``<task>-<code>``;
            replaced if present, a tagger of an earlier evaluation).
        tasks: ``{name: TaggingTask}``.
        languages: the study's languages (a tagger only where the model knows one).
        evaluation: the study's `EvaluationConfig` (tagging steps, learning rate, batch).
        from_scratch: the Scratch baseline: the same architecture (no LS layers), random weights.
    """
    known = checkpoints.build_model(init_dir).language_vocabulary
    records = {}
    for name, task in tasks.items():
        for code in task.train:
            if code not in known or code not in languages:
                continue
            tagger_dir = os.path.join(output_dir, f"{name}-{code}")
            tagger_config = hyperparams.override_params_dict(copy.deepcopy(config), {
                "task": "token_classification",
                "meta": {"enabled": False},
                "finetune": {"init_model_dir": init_dir, "train_language": code, "from_scratch": from_scratch},
                "data": {"batch_size": evaluation.tagging_batch_size},
                "trainer": {"train_steps": evaluation.tagging_steps, "warmup_steps": 0,
                            "learning_rate": evaluation.tagging_learning_rate, "probe_interval": 0,
                            "checkpoint_interval": evaluation.tagging_steps,
                            "eval_interval": evaluation.tagging_steps},
            }, is_strict=True)
            if from_scratch:
                tagger_config.model.language_specific = "none"
            shutil.rmtree(tagger_dir, ignore_errors=True)
            with open(os.devnull, "w") as quiet:
                run_finetuning(tagger_config, tagger_dir, "train", log=quiet,
                               task_data=(task.label_names, task.train[code], {}))
            tagger = checkpoints.restore_model(tagger_dir)
            tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(tagger_dir))
            records.setdefault(f"tagging:{name}", {})[code] = tagging_records(
                tagger, tokenizer, task, code, config.data.sequence_length)
    return records
