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


def corpus_vocabulary(tokenizer, sources: list, batch_size: int = 512) -> list:
    """The sorted token ids of every sentence of `sources` (``[{language: sentences or files}]``), specials included.

    Every masked-LM target of these texts is in it, so the head's restricted
    softmax loses nothing.
    """
    ids = {int(tokenizer.pad_id), int(tokenizer.cls_id), int(tokenizer.sep_id), int(tokenizer.unk_id)}
    for source in sources:
        for code, text in source.items():
            sentences = list(_sentences(text, code))
            for start in range(0, len(sentences), batch_size):
                pieces = tokenizer.tokenize(tf.constant(sentences[start:start + batch_size]))
                ids.update(np.unique(pieces.flat_values.numpy()).tolist())
    return sorted(ids)


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
    if os.path.exists(vocabulary_path):  # a resumed run predicts what it predicted before
        with open(vocabulary_path, encoding="utf-8") as file:
            vocabulary = json.load(file)
    else:
        vocabulary = corpus_vocabulary(tokenizer, [inputs.train_sources, inputs.valid_sources])
        atomic_write_text(vocabulary_path, json.dumps(vocabulary))
    if config.finetune.init_model_dir:
        initialize = _start_from_run(initialize, config.finetune.init_model_dir, vocabulary)
    built = {}

    def build():
        model = MultilingualModel(build_encoder(), masked_lm=True, masked_lm_vocabulary=vocabulary,
                                  masked_lm_activation="gelu")
        select_trainable(model, config.finetune.train_weights)
        built["model"] = model
        return model

    def as_positions(batch):
        return {**batch, "mask_ids": built["model"].vocabulary_positions(batch["mask_ids"])}

    eval_batches = inputs.eval_batches()
    spec = TaskSpec(
        languages=languages,
        build_model=build,
        output_name=MASKED_LM_LOGITS,
        example_losses=lambda outputs, batch: masked_lm_example_losses(outputs[MASKED_LM_LOGITS], as_positions(batch)),
        example_metrics=lambda outputs, batch: masked_lm_example_metrics(outputs, as_positions(batch)),
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
