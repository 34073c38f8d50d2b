"""Keras 3 layers: the language-routing mechanism, the LS kinds, the block and the heads."""

from tf_metaling.layers.feed_forward import FeedForward
from tf_metaling.layers.language_adapter import LanguageAdapter
from tf_metaling.layers.language_lookup import LanguageLookup
from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer, routed_dense
from tf_metaling.layers.layer_norm import LayerNorm
from tf_metaling.layers.masked_lm_head import MaskedLMHead
from tf_metaling.layers.multilingual_embedding import MultilingualEmbedding
from tf_metaling.layers.pooled_embedding import PooledEmbedding
from tf_metaling.layers.self_attention import SelfAttention
from tf_metaling.layers.sequence_classification_head import SequenceClassificationHead
from tf_metaling.layers.token_classification_head import TokenClassificationHead
from tf_metaling.layers.transformer_block import LS_SLOTS, TransformerBlock, normalize_ls_slots

__all__ = [
    "FeedForward",
    "LS_SLOTS",
    "LanguageAdapter",
    "LanguageLookup",
    "LanguageRoutedLayer",
    "LayerNorm",
    "MaskedLMHead",
    "MultilingualEmbedding",
    "PooledEmbedding",
    "SelfAttention",
    "SequenceClassificationHead",
    "TokenClassificationHead",
    "TransformerBlock",
    "normalize_ls_slots",
    "routed_dense",
]
