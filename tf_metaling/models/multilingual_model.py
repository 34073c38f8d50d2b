"""A trainable multilingual model: the encoder plus the task heads it needs."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_metaling.layers.masked_lm_head import MaskedLMHead
from tf_metaling.layers.pooled_embedding import PooledEmbedding
from tf_metaling.layers.sequence_classification_head import SequenceClassificationHead
from tf_metaling.layers.token_classification_head import TokenClassificationHead
from tf_metaling.models.multilingual_encoder import MultilingualEncoder

# Output names, also used by the trainers and by exported signatures.
SEQUENCE_OUTPUT = "sequence_output"
EMBEDDING = "embedding"
MASKED_LM_LOGITS = "masked_lm_logits"
TOKEN_LOGITS = "token_logits"
SENTENCE_LOGITS = "sentence_logits"


@keras.saving.register_keras_serializable(package="tf_metaling")
class MultilingualModel(keras.Model):
    """`MultilingualEncoder` + heads: masked LM (tied), tagging, sentence classes, embeddings.

    Every model has the parameter-free pooled sentence ``embedding`` output.
    The masked-LM head (output tied to the encoder's token embeddings) is
    computed when the inputs hold ``mask_positions``; the tagging and sentence
    classification heads exist when their class counts are given.

    Args:
        encoder: a `MultilingualEncoder` (or its config dict).
        masked_lm: add the masked-LM head.
        token_class_names: tag names; adds a token classification head.
        sentence_class_names: class names; adds a sentence classification head.
        pooling: ``"mean"`` or ``"first"`` for embeddings and sentence classes.
        head_dropout: dropout before the classifiers.
        masked_lm_activation, masked_lm_layer_norm_epsilon: the masked-LM
            transform's activation and layer-norm epsilon (default: the
            encoder's); a converted checkpoint's head may differ from its blocks.
        masked_lm_vocabulary: token ids the masked LM predicts (default: every
            id). A pretrained encoder's 250k-piece softmax costs more than the
            encoder on CPU; restricted to the pieces a corpus uses, the head's
            output ``i`` is token ``masked_lm_vocabulary[i]`` (still tied: the
            output weights are those ids' embeddings), and targets must be
            given as positions in it (`vocabulary_positions`).

    Call arguments:
        inputs: dict with ``token_ids``, ``padding_mask``, ``language_ids`` and,
            for the masked LM, ``mask_positions``.
        training: enables dropout.
        outputs: names of the outputs to compute (default: all available).

    Returns: a dict with ``sequence_output``, ``embedding`` and, when present,
    ``masked_lm_logits`` ``[B, P, V]``, ``token_logits`` ``[B, T, tags]``,
    ``sentence_logits`` ``[B, classes]``.
    """

    def __init__(
        self,
        encoder,
        masked_lm=True,
        token_class_names=None,
        sentence_class_names=None,
        pooling="mean",
        head_dropout=0.1,
        masked_lm_activation=None,
        masked_lm_layer_norm_epsilon=None,
        masked_lm_vocabulary=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, MultilingualEncoder):
            raise TypeError(f"encoder must be a MultilingualEncoder, got {type(encoder).__name__}.")
        self.encoder = encoder
        self.masked_lm = bool(masked_lm)
        self.token_class_names = list(token_class_names) if token_class_names else None
        self.sentence_class_names = list(sentence_class_names) if sentence_class_names else None
        self.pooling = pooling
        self.head_dropout = float(head_dropout)
        self.masked_lm_activation = masked_lm_activation
        self.masked_lm_layer_norm_epsilon = (
            None if masked_lm_layer_norm_epsilon is None else float(masked_lm_layer_norm_epsilon)
        )
        self.masked_lm_vocabulary = (
            None if masked_lm_vocabulary is None else [int(i) for i in masked_lm_vocabulary])
        if self.masked_lm_vocabulary is not None:
            wrong = [i for i in self.masked_lm_vocabulary if not 0 <= i < encoder.vocabulary_size]
            if wrong or not self.masked_lm_vocabulary:
                raise ValueError(f"masked_lm_vocabulary: ids {wrong[:5]} outside the encoder's "
                                 f"{encoder.vocabulary_size}" if wrong else "masked_lm_vocabulary: empty")
        common = {"dtype": encoder.dtype_policy}
        self.pooler = PooledEmbedding(pooling=pooling, name="pooler", **common)
        self.masked_lm_head = (
            MaskedLMHead(
                encoder.vocabulary_size if self.masked_lm_vocabulary is None else len(self.masked_lm_vocabulary),
                tied=True,
                activation=masked_lm_activation or encoder.activation,
                layer_norm_epsilon=(
                    encoder.layer_norm_epsilon
                    if masked_lm_layer_norm_epsilon is None
                    else masked_lm_layer_norm_epsilon
                ),
                name="masked_lm_head",
                **common,
            )
            if self.masked_lm
            else None
        )
        self.token_head = (
            TokenClassificationHead(len(self.token_class_names), dropout=self.head_dropout,
                                    name="token_head", **common)
            if self.token_class_names
            else None
        )
        self.sentence_head = (
            SequenceClassificationHead(len(self.sentence_class_names), pooling=pooling,
                                       dropout=self.head_dropout, name="sentence_head", **common)
            if self.sentence_class_names
            else None
        )
        sequence_shape = (None, None, encoder.hidden_dim)
        for head in (self.masked_lm_head, self.token_head, self.sentence_head):
            if head is not None:
                head.build(sequence_shape)
        self.built = True

    def vocabulary_positions(self, token_ids):
        """Token ids -> their positions in `masked_lm_vocabulary` (ids outside it: 0); identity without one."""
        if self.masked_lm_vocabulary is None:
            return token_ids
        if getattr(self, "_positions", None) is None:
            table = np.zeros(self.encoder.vocabulary_size, np.int32)
            table[self.masked_lm_vocabulary] = np.arange(len(self.masked_lm_vocabulary), dtype=np.int32)
            self._positions = table
        return tf.gather(tf.constant(self._positions), tf.cast(token_ids, tf.int32))

    @property
    def language_vocabulary(self):
        return self.encoder.language_vocabulary

    @property
    def output_names_available(self) -> tuple:
        names = [SEQUENCE_OUTPUT, EMBEDDING]
        if self.masked_lm_head is not None:
            names.append(MASKED_LM_LOGITS)
        if self.token_head is not None:
            names.append(TOKEN_LOGITS)
        if self.sentence_head is not None:
            names.append(SENTENCE_LOGITS)
        return tuple(names)

    def call(self, inputs, training=None, outputs=None):
        wanted = set(outputs or self.output_names_available)
        unknown = wanted - set(self.output_names_available)
        if unknown:
            raise ValueError(
                f"Outputs {sorted(unknown)} are not available; this model has "
                f"{list(self.output_names_available)}."
            )
        if outputs is None and "mask_positions" not in inputs:
            wanted.discard(MASKED_LM_LOGITS)
        sequence = self.encoder(inputs, training=training)
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = tf.not_equal(inputs["token_ids"], self.encoder.pad_token_id)
        results = {SEQUENCE_OUTPUT: sequence}
        if EMBEDDING in wanted:
            results[EMBEDDING] = self.pooler(sequence, padding_mask)
        if MASKED_LM_LOGITS in wanted:
            embeddings = self.encoder.token_embeddings
            if self.masked_lm_vocabulary is not None:
                embeddings = tf.gather(embeddings, tf.constant(self.masked_lm_vocabulary, tf.int32))
            results[MASKED_LM_LOGITS] = self.masked_lm_head(sequence, inputs["mask_positions"], embeddings)
        if TOKEN_LOGITS in wanted:
            results[TOKEN_LOGITS] = self.token_head(sequence, training=training)
        if SENTENCE_LOGITS in wanted:
            results[SENTENCE_LOGITS] = self.sentence_head(sequence, padding_mask, training=training)
        return results

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "masked_lm": self.masked_lm,
            "token_class_names": self.token_class_names,
            "sentence_class_names": self.sentence_class_names,
            "pooling": self.pooling,
            "head_dropout": self.head_dropout,
            "masked_lm_activation": self.masked_lm_activation,
            "masked_lm_layer_norm_epsilon": self.masked_lm_layer_norm_epsilon,
            "masked_lm_vocabulary": self.masked_lm_vocabulary,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
