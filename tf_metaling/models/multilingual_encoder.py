"""The multilingual encoder: shared transformer blocks with language-routed LS layers."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_metaling.languages import as_vocabulary
from tf_metaling.layers.multilingual_embedding import MultilingualEmbedding
from tf_metaling.layers.transformer_block import TransformerBlock, normalize_ls_slots
from tf_metaling.layers.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="tf_metaling")
class MultilingualEncoder(keras.layers.Layer):
    """XLM-style encoder whose every example runs through its own language's LS layers.

    Token + position (+ optional language) embeddings, then `num_layers`
    `TransformerBlock`s. The blocks in `language_specific_layers` (default: all)
    get the language-specific kinds in `language_specific` (``"adapter"`` by
    default, or any of ``"attention"``, ``"ffn"``, ``"layer_norm"``,
    ``"adapter_attention"``, ``"adapter_ffn"``, or a list of them). Everything
    else is shared by all languages. A batch may mix languages; a scalar
    ``language_ids`` marks a one-language batch and avoids per-example weights.

    Args:
        vocabulary_size: subword vocabulary size (shared by all languages).
        languages: the language codes (or a `LanguageVocabulary` / its config);
            index i of every LS weight belongs to ``languages[i]``.
        hidden_dim, num_layers, num_heads, intermediate_dim: transformer sizes.
        max_sequence_length: number of learned positions.
        language_specific: LS kind(s) added to the selected blocks; ``None`` or
            ``"none"`` for a fully shared model.
        language_specific_layers: indices of the blocks that get LS layers.
        adapter_dim, adapter_activation: adapter sizes.
        dropout, attention_dropout: dropout rates.
        activation: FFN activation.
        normalize_first: pre-LN blocks (adds a final layer norm) instead of post-LN.
        language_embedding: add XLM-style learned language embeddings.
        layer_norm_epsilon: layer-norm epsilon.
        initializer_range: stddev of the truncated-normal kernel initialiser.
        num_segments: adds BERT's segment (token type) embeddings with this
            many segments; inputs may then hold ``segment_ids`` (default 0).
        pad_token_id: the padding id; without a ``padding_mask`` input, the
            mask is ``token_ids != pad_token_id`` (XLM-R pads with 1).

    Call arguments:
        inputs: dict with ``token_ids`` ``[batch, seq]``, ``padding_mask``
            ``[batch, seq]`` (1 for real tokens), ``language_ids`` (``[batch]``
            ints, or a scalar for a one-language batch) and, optionally,
            ``segment_ids`` ``[batch, seq]``.
        training: enables dropout.

    Returns:
        the sequence output ``[batch, seq, hidden_dim]``.

    Example:
    >>> encoder = MultilingualEncoder(vocabulary_size=100, languages=["en", "sw"],
    ...     hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32, adapter_dim=4)
    >>> out = encoder({"token_ids": tf.ones([2, 5], tf.int32),
    ...                "padding_mask": tf.ones([2, 5], tf.int32),
    ...                "language_ids": tf.constant([0, 1])})
    >>> out.shape
    TensorShape([2, 5, 16])

    Reference: Wang, Lipton & Tsvetkov, "On Negative Interference in Multilingual
    Models: Findings and A Meta-Learning Treatment", EMNLP 2020.
    """

    def __init__(
        self,
        vocabulary_size,
        languages,
        hidden_dim=512,
        num_layers=4,
        num_heads=8,
        intermediate_dim=None,
        max_sequence_length=256,
        language_specific="adapter",
        language_specific_layers=None,
        adapter_dim=128,
        adapter_activation="relu",
        dropout=0.1,
        attention_dropout=0.1,
        activation="gelu",
        normalize_first=False,
        language_embedding=False,
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        num_segments=None,
        pad_token_id=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.language_vocabulary = as_vocabulary(languages)
        self.num_languages = len(self.language_vocabulary)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim or 4 * self.hidden_dim)
        self.max_sequence_length = int(max_sequence_length)
        self.language_specific = normalize_ls_slots(language_specific)
        if language_specific_layers is None:
            language_specific_layers = range(self.num_layers)
        self.language_specific_layers = tuple(sorted(int(i) for i in language_specific_layers))
        bad = [i for i in self.language_specific_layers if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(
                f"language_specific_layers {bad} out of range for num_layers={self.num_layers}."
            )
        self.adapter_dim = int(adapter_dim)
        self.adapter_activation = adapter_activation
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.activation = activation
        self.normalize_first = bool(normalize_first)
        self.language_embedding = bool(language_embedding)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.initializer_range = float(initializer_range)
        self.num_segments = None if num_segments is None else int(num_segments)
        self.pad_token_id = int(pad_token_id)

        initializer = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.embedding = MultilingualEmbedding(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            max_sequence_length=self.max_sequence_length,
            num_languages=self.num_languages if self.language_embedding else None,
            num_segments=self.num_segments,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            embeddings_initializer=initializer,
            dtype=self.dtype_policy,
            name="embedding",
        )
        # Blocks are attributes block_0 ... block_{N-1}, not a list: TensorFlow
        # checkpoints do not follow Keras 3's tracked lists, so a list would
        # silently leave the blocks out of every checkpoint.
        for i in range(self.num_layers):
            setattr(self, f"block_{i}", TransformerBlock(
                num_heads=self.num_heads,
                intermediate_dim=self.intermediate_dim,
                num_languages=self.num_languages,
                language_specific=self.language_specific if i in self.language_specific_layers else (),
                adapter_dim=self.adapter_dim,
                adapter_activation=self.adapter_activation,
                dropout=self.dropout,
                attention_dropout=self.attention_dropout,
                activation=self.activation,
                normalize_first=self.normalize_first,
                layer_norm_epsilon=self.layer_norm_epsilon,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            ))
        self.final_norm = (
            LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm")
            if self.normalize_first
            else None
        )
        # Variables are created now: the encoder's shapes do not depend on its inputs,
        # and stateless calls, partitions and checkpoints need them to exist.
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        sequence_shape = (None, None, self.hidden_dim)
        self.embedding.build((None, None))
        for block in self.blocks:
            block.build(sequence_shape)
        if self.final_norm is not None:
            self.final_norm.build(sequence_shape)
        self.built = True

    @property
    def blocks(self) -> list:
        return [getattr(self, f"block_{i}") for i in range(self.num_layers)]

    @property
    def token_embeddings(self):
        """The shared ``[vocabulary_size, hidden_dim]`` token embedding matrix."""
        return self.embedding.token_embeddings

    @property
    def first_language_specific_block(self) -> int:
        """The first block whose output depends on the language (0 with language embeddings; num_layers without LS)."""
        if self.language_embedding:
            return 0
        if not self.language_specific or self.language_specific == ("none",) or not self.language_specific_layers:
            return self.num_layers
        return min(self.language_specific_layers)

    def shared_prefix(self, inputs, end_block: int):
        """The hidden states after blocks ``[0, end_block)``, which no language changes (inference).

        Valid for ``end_block <= first_language_specific_block``; `call_from`
        finishes the pass. The prefix of several models with the same frozen
        weights below their LS layers is then computed once.
        """
        if end_block > self.first_language_specific_block:
            raise ValueError(f"shared_prefix: blocks below {end_block} include language-specific block "
                             f"{self.first_language_specific_block}.")
        token_ids = inputs["token_ids"]
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = tf.not_equal(token_ids, self.pad_token_id)
        language_ids = tf.zeros_like(token_ids[:, 0])  # no layer below end_block reads it
        hidden = self.embedding(token_ids, language_ids, training=False, segment_ids=inputs.get("segment_ids"))
        for block in self.blocks[:end_block]:
            hidden = block(hidden, padding_mask, language_ids, training=False)
        return hidden

    def call_from(self, hidden, padding_mask, language_ids, start_block: int, training=None):
        """The rest of `call` from the hidden states before block `start_block` (`shared_prefix`'s output)."""
        for block in self.blocks[start_block:]:
            hidden = block(hidden, padding_mask, language_ids, training=training)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return hidden

    def call(self, inputs, training=None):
        token_ids = inputs["token_ids"]
        padding_mask = inputs.get("padding_mask")
        if padding_mask is None:
            padding_mask = tf.not_equal(token_ids, self.pad_token_id)
        language_ids = inputs["language_ids"]
        hidden = self.embedding(
            token_ids, language_ids, training=training, segment_ids=inputs.get("segment_ids")
        )
        for block in self.blocks:
            hidden = block(hidden, padding_mask, language_ids, training=training)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return hidden

    def compute_output_shape(self, input_shape):
        return tuple(input_shape["token_ids"]) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "languages": self.language_vocabulary.get_config(),
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
                "language_specific": list(self.language_specific),
                "language_specific_layers": list(self.language_specific_layers),
                "adapter_dim": self.adapter_dim,
                "adapter_activation": self.adapter_activation,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": self.activation,
                "normalize_first": self.normalize_first,
                "language_embedding": self.language_embedding,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "initializer_range": self.initializer_range,
                "num_segments": self.num_segments,
                "pad_token_id": self.pad_token_id,
            }
        )
        return config


