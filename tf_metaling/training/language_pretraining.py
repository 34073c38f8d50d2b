"""Stage 1 of cross-lingual transfer: a pretrained encoder's language-specific layers, learned by MLM per language.

The protocol of the paper and of MAD-X: before any task, each language's LS
layers (adapters by default) are trained by masked language modelling on that
language's unlabelled text, on top of the pretrained encoder; the task is
then learned in English and tested in another language with that language's
own LS layers swapped in (`tf_metaling.study.transfer_study`).

`run_language_pretraining(config, model_dir)` starts from
``finetune.init_preset`` (the built-in encoder, a keras-hub preset or a
Hugging Face directory) and trains on the corpus's text (``data.corpus``:
the built-in corpus or a directory), with the run machinery of every other
run (`run_task`: Orbit, checkpoints, resume, learning curve, early stop):

- **The masked-LM head.** Pretrained encoders such as e5 ship without one, so
  the head is built the standard way: output weights tied to the input token
  embeddings, a fresh dense + GELU + LayerNorm transform and an output bias.
  Its softmax is restricted to the pieces the corpus's text uses
  (`corpus_vocabulary`; 17k of XLM-R's 250k for en, ar, tr, ur), which keeps
  it affordable on CPU; targets are positions in that list.
- **What trains** (``finetune.train_weights``): ``heads`` trains the head alone
  with the LS layers left at the identity: the reference "frozen encoder,
  untrained LS". ``language_specific_and_heads`` trains the LS layers and the
  head, every shared encoder weight frozen: +LS, and with ``meta.enabled``
  +Meta LS (PAPER.md section 4 with MLM losses: each sampled language's phi_k
  meta-trained against every language's held-out MLM loss after a look-ahead
  step of the shared trained weights, here the head). ``finetune.init_model_dir``
  starts a run from another's weights (the LS runs start from the reference's
  trained head: the head is trained first, then jointly with the LS layers).
- **Out.** The run directory holds the model (``checkpoints.restore_model``),
  ``eval_results.json`` with the held-out MLM loss and accuracy per language,
  ``learning_curve.json`` and ``language_layers.npz`` (every language's LS
  layers, `tf_metaling.models.language_modules`; loadable into another
  fine-tune with ``finetune.language_layers``).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import ExperimentConfig
from tf_metaling.losses import masked_lm_example_losses
from tf_metaling.models import MultilingualModel
from tf_metaling.models.language_modules import save_language_module
from tf_metaling.models.multilingual_model import MASKED_LM_LOGITS
from tf_metaling.models.partition import select_trainable
from tf_metaling.training.experiment import TaskSpec, masked_lm_example_metrics, prepare_run, run_task
from tf_metaling.training.finetuning import preset_start
from tf_metaling.training.mlm_inputs import _sentences, build_mlm_inputs

LANGUAGE_LAYERS_FILE = "language_layers.npz"
VOCABULARY_FILE = "masked_lm_vocabulary.json"


def piece_counts(tokenizer, sources: list, batch_size: int = 512) -> dict:
    """``{token id: count}`` over every sentence of `sources` (``[{language: sentences or files}]``), specials at 0."""
    counts = {int(i): 0 for i in (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.unk_id)}
    for source in sources:
        for code, text in source.items():
            sentences = list(_sentences(text, code))
            for start in range(0, len(sentences), batch_size):
                pieces = tokenizer.tokenize(tf.constant(sentences[start:start + batch_size]))
                ids, frequencies = np.unique(pieces.flat_values.numpy(), return_counts=True)
                for token, frequency in zip(ids.tolist(), frequencies.tolist()):
                    counts[token] = counts.get(token, 0) + frequency
    return counts


def corpus_vocabulary(tokenizer, sources: list, batch_size: int = 512) -> list:
    """The sorted token ids of every sentence of `sources` (``[{language: sentences or files}]``), specials included.

    Every masked-LM target of these texts is in it, so the head's restricted
    softmax loses nothing.
    """
    return sorted(piece_counts(tokenizer, sources, batch_size))


def unigram_bias(counts: dict, vocabulary: list) -> np.ndarray:
    """The output bias that makes a fresh head predict the pieces' frequencies: log of their (add-one) shares.

    A zero bias starts the softmax uniform over the vocabulary, several nats
    above the unigram entropy, and Adam moves a bias about one learning rate
    per step: thousands of steps before the head says anything about context.
    """
    frequencies = np.array([counts.get(token, 0) + 1.0 for token in vocabulary])
    return np.log(frequencies / frequencies.sum()).astype(np.float32)


def stage1_model(encoder, vocabulary: list, train_weights: str) -> MultilingualModel:
    """The stage-1 model: `encoder` + a fresh tied masked-LM head over `vocabulary`; `train_weights` trainable."""
    model = MultilingualModel(encoder, masked_lm=True, masked_lm_vocabulary=vocabulary, masked_lm_activation="gelu")
    select_trainable(model, train_weights)
    return model


def stage1_losses(model):
    """``(example_losses, example_metrics)`` of a `stage1_model`: targets as positions in its vocabulary."""

    def as_positions(batch):
        return {**batch, "mask_ids": model.vocabulary_positions(batch["mask_ids"])}

    def losses(outputs, batch):
        return masked_lm_example_losses(outputs[MASKED_LM_LOGITS], as_positions(batch))

    def metrics(outputs, batch):
        return masked_lm_example_metrics(outputs, as_positions(batch))

    return losses, metrics


def _start_from_run(initialize, init_dir: str, vocabulary: list):
    """`initialize` (the preset's weights), then every weight a previous stage-1 run saved (its head, its LS layers)."""
    path = os.path.join(init_dir, VOCABULARY_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config field finetune.init_model_dir: {path} is missing; it must be a stage-1 "
                                "run directory (run_language_pretraining).")
    with open(path, encoding="utf-8") as file:
        saved = json.load(file)
    if saved != vocabulary:
        raise ValueError(f"config field finetune.init_model_dir: {init_dir} predicts another vocabulary "
                         f"({len(saved)} ids against {len(vocabulary)}): its corpus or languages differ.")

    def initialize_from_run(model):
        initialize(model)
        latest = checkpoints.latest_checkpoint(init_dir)
        if latest is None:
            raise FileNotFoundError(f"config field finetune.init_model_dir: {init_dir} has no checkpoint.")
        tf.train.Checkpoint(model=model).read(latest).expect_partial()

    return initialize_from_run


def run_language_pretraining(config: ExperimentConfig, model_dir: str, mode: str = "train_and_eval",
                             strategy: Optional[tf.distribute.Strategy] = None, log=None, corpus=None) -> dict:
    """Trains (stage 1) the LS layers and/or masked-LM head of `finetune.init_preset` by MLM; returns the metrics.

    `corpus`: the corpus, already loaded (default: ``config.data``'s).
    """
    if not config.finetune.init_preset:
        raise ValueError("config field finetune.init_preset: stage 1 starts from a pretrained encoder "
                         "(builtin, a keras-hub preset or a Hugging Face directory).")
    if config.finetune.train_weights == "all":
        raise ValueError("config field finetune.train_weights: stage 1 keeps the shared encoder frozen; "
                         "choose language_specific_and_heads (+LS, +Meta LS) or heads (the reference).")
    strategy, model_dir = prepare_run(config, model_dir, strategy)
    tokenizer, languages, build_encoder, initialize = preset_start(config, config.finetune.init_preset, model_dir)
    inputs = build_mlm_inputs(config.data, model_dir, config.runtime.seed, corpus=corpus, log=log,
                              tokenizer=tokenizer)
    vocabulary_path = os.path.join(model_dir, VOCABULARY_FILE)
    counts = piece_counts(tokenizer, [inputs.train_sources])  # the head's prior: training text only
    vocabulary = sorted(set(counts) | set(piece_counts(tokenizer, [inputs.valid_sources])))
    if os.path.exists(vocabulary_path):  # a resumed run predicts what it predicted before
        with open(vocabulary_path, encoding="utf-8") as file:
            if json.load(file) != vocabulary:
                raise ValueError(f"{vocabulary_path}: this run's corpus has other pieces than the run it resumes; "
                                 "use a new model_dir.")
    else:
        atomic_write_text(vocabulary_path, json.dumps(vocabulary))
    start = initialize

    def initialize(model):  # a fresh head predicts the pieces' frequencies
        start(model)
        model.masked_lm_head.output_bias.assign(unigram_bias(counts, vocabulary))

    if config.finetune.init_model_dir:
        initialize = _start_from_run(initialize, config.finetune.init_model_dir, vocabulary)
    built = {}

    def build():
        built["model"] = stage1_model(build_encoder(), vocabulary, config.finetune.train_weights)
        built["losses"], built["metrics"] = stage1_losses(built["model"])
        return built["model"]

    eval_batches = inputs.eval_batches()
    spec = TaskSpec(
        languages=languages,
        build_model=build,
        output_name=MASKED_LM_LOGITS,
        example_losses=lambda outputs, batch: built["losses"](outputs, batch),
        example_metrics=lambda outputs, batch: built["metrics"](outputs, batch),
        train_dataset_fn=lambda skip, paired: inputs.train_dataset_fn(paired=paired, skip_batches=skip),
        eval_batches=eval_batches,
        meta_dataset_fn=lambda skip: inputs.meta_dataset_fn(skip_batches=skip),
        initialize=initialize,
        mixture=inputs.sampling_probabilities(),
        accuracy_baselines=lambda: inputs.accuracy_baselines(eval_batches),
    )
    metrics = run_task(config, model_dir, mode, strategy, spec, log)
    if mode != "eval" and config.finetune.train_weights == "language_specific_and_heads":
        save_language_module(built["model"], list(languages.codes), os.path.join(model_dir, LANGUAGE_LAYERS_FILE),
                             provenance={"run": os.path.abspath(model_dir), "stage": "language pretraining",
                                         "meta": bool(config.meta.enabled),
                                         "steps": int(metrics.get("step", config.trainer.train_steps))})
    return metrics
