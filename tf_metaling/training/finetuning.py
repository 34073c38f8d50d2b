"""Fine-tuning a pretrained model on tagging or sentence classification, with zero-shot transfer.

The model starts from a pretrained model_dir (its encoder weights, language
modules and tokenizer), gets the task's head, trains on ONE language
(`finetune.train_language`, English by default) and is evaluated on every
language the task has: accuracy on the other languages is zero-shot transfer.

Task data: the built-in tasks of the parallel corpus (``revelation_period``:
Meccan vs Medinan surah; ``testament``: Old vs New Testament), or files:
XNLI-style TSV for sentence classification; CoNLL-U (UPOS) or WikiAnn/CoNLL
IOB for tagging.
"""

from __future__ import annotations

import os
import random
import shutil
from typing import Optional

import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.configs import ExperimentConfig
from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.iob_reader import IobReader
from tf_metaling.data.nli_reader import NLI_LABELS, NliReader
from tf_metaling.data.sentence_classification import classification_dataset
from tf_metaling.data.token_tagging import PANX_TAGS, UPOS_TAGS, tagging_dataset
from tf_metaling.data.tokenizer import Tokenizer
from tf_metaling.losses import sentence_classification_example_losses, token_classification_example_losses
from tf_metaling.models import MultilingualModel
from tf_metaling.models.multilingual_model import SENTENCE_LOGITS, TOKEN_LOGITS
from tf_metaling.training.experiment import TaskSpec, prepare_run, run_task
from tf_metaling.training.mlm_inputs import parse_language_files


def sentence_metrics(outputs, batch):
    predicted = tf.argmax(outputs[SENTENCE_LOGITS], axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predicted, tf.cast(batch["labels"], tf.int32)), tf.float32)
    return correct, tf.ones_like(correct)


def token_metrics(outputs, batch):
    predicted = tf.argmax(outputs[TOKEN_LOGITS], axis=-1, output_type=tf.int32)
    weights = tf.cast(batch["label_weights"], tf.float32)
    correct = tf.cast(tf.equal(predicted, tf.cast(batch["labels"], tf.int32)), tf.float32) * weights
    return tf.reduce_sum(correct, axis=1), tf.reduce_sum(weights, axis=1)


def _task_data(config: ExperimentConfig, languages):
    """``(label_names, train examples, {language: eval examples}, is_tagging)``."""
    finetune = config.finetune
    tagging = config.task == "token_classification"
    if finetune.dataset in ("revelation_period", "testament"):
        if tagging:
            raise ValueError(f"config field finetune.dataset: {finetune.dataset!r} is a sentence classification task.")
        from tf_metaling.data.corpora import load_builtin_corpus
        from tf_metaling.data.tasks import builtin_classification_tasks

        corpus = load_builtin_corpus(
            cache_dir=config.data.cache_dir or None,
            languages=[code for code in languages.codes],
            low_resource_size=config.data.low_resource_size,
        )
        tasks = builtin_classification_tasks(corpus, pivot=finetune.train_language)
        if finetune.dataset not in tasks:
            raise ValueError(
                f"config field finetune.dataset: {finetune.dataset!r} is not available for languages "
                f"{list(languages.codes)}; available: {sorted(tasks)}."
            )
        task = tasks[finetune.dataset]
        return list(task.label_names), task.train, task.test, False
    if finetune.dataset != "files":
        raise ValueError(
            f"config field finetune.dataset: {finetune.dataset!r}; expected revelation_period, testament or files."
        )
    if not finetune.train_file:
        raise ValueError("config field finetune.train_file: required with finetune.dataset=files.")
    eval_files = parse_language_files(finetune.eval_files, "finetune.eval_files") if finetune.eval_files else {}

    def read(path, language):
        if not tagging:
            return list(NliReader(path, language=language, keep_languages=[language]))
        if path.endswith((".conllu", ".conllu.gz")):
            return list(ConlluReader(path, language))
        return list(IobReader(path, language=language))

    default_labels = (UPOS_TAGS if any(p.endswith(".conllu") for p in [finetune.train_file]) else PANX_TAGS) \
        if tagging else NLI_LABELS
    labels = list(finetune.label_names) or list(default_labels)
    train = read(finetune.train_file, finetune.train_language)
    evaluation = {code: read(path, code) for code, path in eval_files.items()}
    return labels, train, evaluation, tagging


def run_finetuning(
    config: ExperimentConfig,
    model_dir: str,
    mode: str = "train_and_eval",
    strategy: Optional[tf.distribute.Strategy] = None,
    log=None,
    task_data: Optional[tuple] = None,
) -> dict:
    """Fine-tunes `finetune.init_model_dir` on the configured task; returns per-language metrics.

    `task_data` = ``(label_names, train examples, {language: eval examples})``
    gives the task's examples directly (e.g. a corpus's `TaggingTask`) instead of
    ``finetune.dataset``. With ``finetune.from_scratch`` the model has the
    pretrained run's architecture and tokenizer but random weights: the
    no-pretraining baseline.
    """
    if config.task not in ("sentence_classification", "token_classification"):
        raise ValueError(f"config field task: run_finetuning needs a classification task, got {config.task!r}.")
    init_dir = config.finetune.init_model_dir
    if not init_dir:
        raise ValueError("config field finetune.init_model_dir: the pretrained model_dir is required.")
    vocab = checkpoints.vocab_path(init_dir)
    if vocab is None:
        raise FileNotFoundError(f"{init_dir}: no vocab.txt; fine-tuning needs the pretraining tokenizer.")
    strategy, model_dir = prepare_run(config, model_dir, strategy)
    shutil.copyfile(vocab, os.path.join(model_dir, checkpoints.VOCAB_FILE))
    for suffix in (".config.json",):
        if os.path.exists(vocab + suffix):
            shutil.copyfile(vocab + suffix, os.path.join(model_dir, checkpoints.VOCAB_FILE + suffix))
    tokenizer = Tokenizer.from_vocab_file(os.path.join(model_dir, checkpoints.VOCAB_FILE))
    pretrained = checkpoints.build_model(init_dir)
    pretrained_encoder = pretrained.encoder.get_config()
    languages = pretrained.language_vocabulary
    languages.check([config.finetune.train_language], where="config field finetune.train_language")
    if task_data is not None:
        labels, train, evaluation = task_data
        train, tagging = list(train), config.task == "token_classification"
    else:
        labels, train, evaluation, tagging = _task_data(config, languages)
    evaluation = {code: examples for code, examples in evaluation.items() if code in languages and examples}
    if not train:
        raise ValueError(f"No training examples for language {config.finetune.train_language!r}.")
    random.Random(config.runtime.seed).shuffle(train)
    data = config.data
    if tagging:
        make_dataset = tagging_dataset
    else:
        pairs = train[0].text_pair is not None  # XNLI-style premise/hypothesis pairs

        def make_dataset(*args, **kwargs):
            return classification_dataset(*args, pairs=pairs, **kwargs)

    def build():
        from tf_metaling.models import MultilingualEncoder

        encoder = MultilingualEncoder.from_config(pretrained_encoder)
        kwargs = {"token_class_names": labels} if tagging else {"sentence_class_names": labels}
        return MultilingualModel(encoder, masked_lm=False, **kwargs)

    def initialize(model):
        if config.finetune.from_scratch:
            return
        # The pretrained encoder (shared and language-specific weights); the new
        # head keeps its initialisation, the old masked-LM head is not needed.
        path = checkpoints.latest_checkpoint(init_dir)
        if path is None:
            raise FileNotFoundError(f"{init_dir}: no checkpoint to fine-tune from.")
        tf.train.Checkpoint(model=model).read(path).expect_partial()

    def train_dataset_fn(skip, paired):
        if paired:
            raise ValueError("config field meta.enabled: meta-learning is for pretraining, not fine-tuning.")

        def dataset_fn(context: tf.distribute.InputContext | None = None):
            pipelines, pipeline = (1, 0) if context is None else (context.num_input_pipelines, context.input_pipeline_id)
            batch = data.batch_size if context is None else context.get_per_replica_batch_size(data.batch_size)
            dataset = make_dataset(train[pipeline::pipelines], tokenizer, languages, labels,
                                   data.sequence_length, batch, drop_remainder=True)
            return dataset.repeat().skip(skip).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    eval_batches = {
        code: list(make_dataset(examples, tokenizer, languages, labels, data.sequence_length, data.eval_batch_size))
        for code, examples in evaluation.items()
    }
    spec = TaskSpec(
        languages=languages,
        build_model=build,
        output_name=TOKEN_LOGITS if tagging else SENTENCE_LOGITS,
        example_losses=(
            (lambda outputs, batch: token_classification_example_losses(outputs[TOKEN_LOGITS], batch))
            if tagging
            else (lambda outputs, batch: sentence_classification_example_losses(outputs[SENTENCE_LOGITS], batch))
        ),
        example_metrics=token_metrics if tagging else sentence_metrics,
        train_dataset_fn=train_dataset_fn,
        eval_batches=eval_batches,
        initialize=initialize,
    )
    return run_task(config, model_dir, mode, strategy, spec, log)
