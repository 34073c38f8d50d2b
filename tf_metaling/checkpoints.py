"""A model directory: the model's config beside its TensorFlow checkpoints.

Trainers write, and the exporter and analysis tools read, one layout::

    model_dir/
      model.json        the Keras config of the `MultilingualModel` (architecture, languages)
      vocab.txt         the tokenizer, when the model reads text: a WordPiece vocabulary, or
                        sentencepiece.model for a converted XLM-R (each kind's `file_name`)
      config.yaml       the resolved experiment config (written by the trainers)
      synthetic_languages.json   each synthetic language's id shift and word order
                        (data.corpus=synthetic; `tf_metaling.data.synthetic`)
      checkpoint, ckpt-N.*   `tf.train.Checkpoint(model=..., ...)` files

`restore_model` rebuilds the model from ``model.json`` and loads the newest
(or a given) checkpoint's weights into it, ignoring optimizer state.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

import tf_metaling.models  # noqa: F401  (registers the Keras classes model.json names)

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.models.language_modules import save_language_module
from tf_metaling.tokenizers import SentencePieceTokenizer, Tokenizer, WordPieceTokenizer

MODEL_CONFIG_FILE = "model.json"
# The tokenizer kinds a model_dir may hold, in the order `vocab_path` looks for their files.
TOKENIZER_KINDS = (WordPieceTokenizer, SentencePieceTokenizer)


def save_model_config(model, model_dir: str) -> str:
    """Writes ``model_dir/model.json`` (the model's serialized Keras config)."""
    config = keras.saving.serialize_keras_object(model)
    return atomic_write_text(os.path.join(model_dir, MODEL_CONFIG_FILE), json.dumps(config, indent=2))


def build_model(model_dir: str):
    """A freshly initialised model built from ``model_dir/model.json``."""
    path = os.path.join(model_dir, MODEL_CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no model config; is {model_dir!r} a tf_metaling model_dir?")
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    return keras.saving.deserialize_keras_object(config)


def training_checkpoint(model, **others) -> tf.train.Checkpoint:
    """A checkpoint of `model` that also holds its non-trainable state.

    Keras 3 keeps dropout seed counters in `SeedGenerator`s, which TensorFlow
    checkpoints do not follow; without them a resumed run would draw other
    dropout masks than an uninterrupted one. They are saved by position.
    Frozen weights (fine-tuning) are non-trainable variables too, but the
    model already saves them: they are left out of the state, which would
    otherwise double the checkpoint of a frozen pretrained encoder.
    """
    weights = {id(variable) for variable in model.weights}
    state = [variable.value for variable in model.non_trainable_variables if id(variable) not in weights]
    return tf.train.Checkpoint(model=model, model_state=state, **others)


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(model_dir)


def restore_model(model_dir: str, checkpoint_path: str | None = None):
    """Rebuilds the model of `model_dir` and loads a checkpoint's weights into it.

    Args:
        model_dir: a directory written by the trainers (see module docstring).
        checkpoint_path: a specific ``ckpt-N`` prefix; default the newest.

    Returns: the model with the checkpoint's weights.
    """
    model = build_model(model_dir)
    checkpoint_path = checkpoint_path or latest_checkpoint(model_dir)
    if checkpoint_path is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint found (expected ckpt-N files).")
    status = tf.train.Checkpoint(model=model).read(checkpoint_path)
    status.expect_partial()  # optimizer slots and data iterators are not needed here
    status.assert_existing_objects_matched()
    return model


CONFIG_YAML_FILE = "config.yaml"


def save_language_layers(model_dir: str, languages, path: str, checkpoint_path: str | None = None) -> str:
    """Writes the LS layers of `languages` of a trained model_dir to a language-layers file; returns its path.

    The file's provenance names the run: the model_dir, the checkpoint (and its step), and the
    resolved experiment config (``config.yaml``) when the trainers wrote one. See
    `tf_metaling.models.language_modules` for the format and `finetune.language_layers` for loading.
    """
    checkpoint_path = checkpoint_path or latest_checkpoint(model_dir)
    model = restore_model(model_dir, checkpoint_path)
    provenance = {"model_dir": os.path.abspath(model_dir), "checkpoint": os.path.abspath(checkpoint_path)}
    step = os.path.basename(checkpoint_path).rpartition("-")[2]
    if step.isdigit():
        provenance["step"] = int(step)
    config_path = os.path.join(model_dir, CONFIG_YAML_FILE)
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as file:
            provenance["experiment_config"] = file.read()
    return save_language_module(model, languages, path, provenance=provenance)


def vocab_path(model_dir: str) -> str | None:
    """The tokenizer file of a model_dir (the `file_name` of a kind in `TOKENIZER_KINDS`), or None."""
    for kind in TOKENIZER_KINDS:
        path = os.path.join(model_dir, kind.file_name)
        if os.path.exists(path):
            return path
    return None


def load_tokenizer(path: str) -> Tokenizer:
    """The tokenizer saved at `path`, loaded by the kind whose file name or suffix it has.

    A file that no kind claims is a WordPiece vocabulary: one token per line, under any name
    (``data.vocab_file``, the exporter's ``--vocab_file``).
    """
    kind = next((kind for kind in TOKENIZER_KINDS if kind.reads_file(path)), WordPieceTokenizer)
    return kind.load(path)
