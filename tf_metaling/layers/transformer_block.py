"""The shared transformer block with named slots for language-specific layers."""

from __future__ import annotations

import keras

from tf_metaling.layers.activations import get_activation
from tf_metaling.layers.feed_forward import FeedForward
from tf_metaling.layers.language_adapter import LanguageAdapter
from tf_metaling.layers.layer_norm import LayerNorm
from tf_metaling.layers.self_attention import SelfAttention

# The places a block can hold language-specific (LS) parameters.
LS_SLOTS = ("adapter_attention", "adapter_ffn", "attention", "ffn", "layer_norm")
# Shorthands accepted in configs, expanded to slots.
LS_ALIASES = {"adapter": ("adapter_attention", "adapter_ffn"), "none": ()}


def normalize_ls_slots(language_specific) -> tuple:
    """Expands a kind name or a list of kinds/slots into a sorted tuple of slots."""
    if language_specific is None:
        return ()
    if isinstance(language_specific, str):
        language_specific = [k.strip() for k in language_specific.split(",") if k.strip()]
    slots = set()
    for kind in language_specific:
        if kind in LS_ALIASES:
            slots.update(LS_ALIASES[kind])
        elif kind in LS_SLOTS:
            slots.add(kind)
        else:
            raise ValueError(
                f"Unknown language-specific kind {kind!r}; expected one of "
                f"{sorted(LS_ALIASES) + list(LS_SLOTS)}."
            )
    return tuple(s for s in LS_SLOTS if s in slots)


@keras.saving.register_keras_serializable(package="tf_metaling")
class TransformerBlock(keras.layers.Layer):
    """Transformer encoder block (post-LN as in XLM, or pre-LN) with LS slots.

    Post-LN, with the paper's adapters::

        a = Dropout(Attention_l?(h));  a = Adapter1_l(a);  h = LN1_l?(h + a)
        f = Dropout(FFN_l?(h));        f = Adapter2_l(f);  h = LN2_l?(h + f)

    where ``_l?`` marks a sublayer that is language specific when its slot is
    listed in `language_specific`: ``"attention"`` and ``"ffn"`` replace the
    shared sublayer with a per-language one, ``"layer_norm"`` makes both norms
    per language, ``"adapter_attention"``/``"adapter_ffn"`` add an adapter after
    that sublayer (``"adapter"`` adds both).

    Args:
        num_heads: attention heads.
        intermediate_dim: FFN width.
        num_languages: number of languages L (needed when any slot is LS).
        language_specific: a kind name, or a list of kinds/slots (see above).
        adapter_dim: adapter bottleneck width.
        adapter_activation: adapter activation.
        dropout: dropout on sublayer outputs (and inside adapters).
        attention_dropout: dropout on attention probabilities.
        activation: FFN activation.
        normalize_first: pre-LN instead of post-LN.
        layer_norm_epsilon: layer-norm epsilon.
        kernel_initializer: initialiser of attention and FFN kernels.

    Call arguments:
        inputs: ``[batch, seq, hidden]``.
        padding_mask: ``[batch, seq]``, 1 for real tokens.
        language_ids: ``[batch]`` ids or a scalar id.
        training: enables dropout.

    Example:
    >>> block = TransformerBlock(num_heads=2, intermediate_dim=32, num_languages=3,
    ...                          language_specific="adapter", adapter_dim=4)
    >>> block(tf.ones([2, 5, 8]), tf.ones([2, 5]), tf.constant([0, 2])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        num_languages=None,
        language_specific=(),
        adapter_dim=128,
        adapter_activation="relu",
        dropout=0.1,
        attention_dropout=0.1,
        activation="gelu",
        normalize_first=False,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.num_languages = None if num_languages is None else int(num_languages)
        self.language_specific = normalize_ls_slots(language_specific)
        if self.language_specific and self.num_languages is None:
            raise ValueError(
                f"TransformerBlock {self.name!r}: language_specific="
                f"{list(self.language_specific)} needs num_languages."
            )
        self.adapter_dim = int(adapter_dim)
        self.adapter_activation = keras.activations.get(adapter_activation)
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.activation = get_activation(activation)
        self.normalize_first = bool(normalize_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def languages_if(slot):
            return self.num_languages if slot in self.language_specific else None

        common = {"dtype": self.dtype_policy}
        self.attention = SelfAttention(
            num_heads=self.num_heads,
            dropout=self.attention_dropout,
            num_languages=languages_if("attention"),
            kernel_initializer=self.kernel_initializer,
            name="attention",
            **common,
        )
        self.feed_forward = FeedForward(
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
            num_languages=languages_if("ffn"),
            kernel_initializer=self.kernel_initializer,
            name="feed_forward",
            **common,
        )
        self.attention_norm = LayerNorm(
            self.layer_norm_epsilon,
            num_languages=languages_if("layer_norm"),
            name="attention_norm",
            **common,
        )
        self.feed_forward_norm = LayerNorm(
            self.layer_norm_epsilon,
            num_languages=languages_if("layer_norm"),
            name="feed_forward_norm",
            **common,
        )
        self.attention_adapter = self._maybe_adapter("adapter_attention", common)
        self.feed_forward_adapter = self._maybe_adapter("adapter_ffn", common)
        self.output_dropout = keras.layers.Dropout(self.dropout, **common)

    def _maybe_adapter(self, slot, common):
        if slot not in self.language_specific:
            return None
        return LanguageAdapter(
            adapter_dim=self.adapter_dim,
            num_languages=self.num_languages,
            activation=self.adapter_activation,
            dropout=self.dropout,
            name=slot,
            **common,
        )

    def build(self, input_shape):
        for layer in (self.attention, self.feed_forward, self.attention_norm, self.feed_forward_norm):
            layer.build(input_shape)
        for adapter in (self.attention_adapter, self.feed_forward_adapter):
            if adapter is not None:
                adapter.build(input_shape)
        self.built = True

    def _sublayer(self, hidden, norm, adapter, call, language_ids, training):
        """One residual sublayer: dropout(layer(.)) -> adapter -> residual add, with LN."""
        inputs = norm(hidden, language_ids) if self.normalize_first else hidden
        update = self.output_dropout(call(inputs), training=training)
        if adapter is not None:
            update = adapter(update, language_ids, training=training)
        hidden = hidden + update
        return hidden if self.normalize_first else norm(hidden, language_ids)

    def call(self, inputs, padding_mask=None, language_ids=None, training=None):
        hidden = self._sublayer(
            inputs,
            self.attention_norm,
            self.attention_adapter,
            lambda x: self.attention(x, padding_mask, language_ids, training=training),
            language_ids,
            training,
        )
        return self._sublayer(
            hidden,
            self.feed_forward_norm,
            self.feed_forward_adapter,
            lambda x: self.feed_forward(x, language_ids, training=training),
            language_ids,
            training,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "num_languages": self.num_languages,
                "language_specific": list(self.language_specific),
                "adapter_dim": self.adapter_dim,
                "adapter_activation": keras.activations.serialize(self.adapter_activation),
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": keras.activations.serialize(self.activation),
                "normalize_first": self.normalize_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
