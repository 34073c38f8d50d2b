"""Token + position (+ optional language) embeddings of the multilingual encoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer, expand_per_example
from tf_metaling.layers.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="tf_metaling")
class MultilingualEmbedding(LanguageRoutedLayer):
    """Sums token, learned position and (optionally) segment and language embeddings, then LN + dropout.

    The token embedding matrix is shared by all languages (one subword
    vocabulary) and is the matrix a tied masked-LM head reuses. Language
    embeddings (XLM's optional language embeddings) are a per-language weight
    of the routing mechanism, so they belong to each language's parameters.

    Args:
        vocabulary_size: number of subword ids.
        hidden_dim: embedding width.
        max_sequence_length: number of learned positions.
        num_languages: when set, adds a learned embedding per language.
        num_segments: when set, adds BERT's segment (token type) embeddings;
            ``segment_ids`` default to 0 (single-sentence inputs).
        dropout: dropout after the embedding layer norm.
        layer_norm_epsilon: epsilon of the embedding layer norm.
        embeddings_initializer: initialiser of all embedding tables.

    Call arguments:
        token_ids: ``[batch, seq]`` int ids.
        language_ids: ``[batch]`` ids or a scalar id (used only with language embeddings).
        segment_ids: optional ``[batch, seq]`` segment ids (used only with segment embeddings).
        training: enables dropout.

    Example:
    >>> embedding = MultilingualEmbedding(100, 8, 16, num_languages=3)
    >>> embedding(tf.ones([2, 5], tf.int32), tf.constant([0, 2])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_sequence_length,
        num_languages=None,
        num_segments=None,
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        embeddings_initializer=None,
        **kwargs,
    ):
        super().__init__(num_languages=num_languages, **kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.max_sequence_length = int(max_sequence_length)
        self.num_segments = None if num_segments is None else int(num_segments)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.norm = LayerNorm(self.layer_norm_epsilon, name="embedding_norm", dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.token_embeddings = self.add_weight(
            name="token_embeddings",
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=self.embeddings_initializer,
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_sequence_length, self.hidden_dim),
            initializer=self.embeddings_initializer,
        )
        self.segment_embeddings = None
        if self.num_segments is not None:
            self.segment_embeddings = self.add_weight(
                name="segment_embeddings",
                shape=(self.num_segments, self.hidden_dim),
                initializer=self.embeddings_initializer,
            )
        self.language_embeddings = None
        if self.is_language_specific:
            self.language_embeddings = self.add_routed_weight(
                "language_embeddings", (self.hidden_dim,), self.embeddings_initializer
            )
        self.norm.build((None, None, self.hidden_dim))
        self.built = True

    def call(self, token_ids, language_ids=None, training=None, segment_ids=None):
        token_ids = tf.cast(token_ids, tf.int32)
        length = tf.shape(token_ids)[1]
        tf.debugging.assert_less_equal(
            length,
            self.max_sequence_length,
            message=f"sequence longer than max_sequence_length={self.max_sequence_length}",
        )
        embedded = tf.gather(self.token_embeddings, token_ids)
        embedded = embedded + self.position_embeddings[None, :length, :]
        if self.segment_embeddings is not None:
            if segment_ids is None:
                embedded = embedded + self.segment_embeddings[0]
            else:
                embedded = embedded + tf.gather(self.segment_embeddings, tf.cast(segment_ids, tf.int32))
        if self.language_embeddings is not None:
            language = self.select_for_languages(self.language_embeddings, language_ids)
            embedded = embedded + expand_per_example(language, 3)
        return self.dropout_layer(self.norm(embedded), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
