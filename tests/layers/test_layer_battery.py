"""Every public layer passes the keras-hub-style battery."""

import numpy as np
import pytest

from tests.layer_battery import run_layer_battery
from tf_metaling.layers import (
    FeedForward,
    LanguageAdapter,
    LayerNorm,
    MaskedLMHead,
    MultilingualEmbedding,
    PooledEmbedding,
    SelfAttention,
    SequenceClassificationHead,
    TokenClassificationHead,
    TransformerBlock,
)

B, T, D, L = 4, 6, 8, 3
rng = np.random.RandomState(0)
HIDDEN = rng.normal(size=(B, T, D)).astype("float32")
LANGS = np.array([0, 2, 1, 2], dtype="int32")
MASK = np.array([[1] * T, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * T], dtype="int32")
HIDDEN_SPEC = ((T, D), "float32")
LANG_SPEC = ((), "int32")
MASK_SPEC = ((T,), "int32")

CASES = {
    "adapter": (LanguageAdapter, {"adapter_dim": 4, "num_languages": L, "dropout": 0.1},
                [HIDDEN_SPEC, LANG_SPEC], [HIDDEN, LANGS], (B, T, D), 4),
    "feed_forward_shared": (FeedForward, {"intermediate_dim": 16}, [HIDDEN_SPEC], [HIDDEN], (B, T, D), 4),
    "feed_forward_ls": (FeedForward, {"intermediate_dim": 16, "num_languages": L},
                        [HIDDEN_SPEC, LANG_SPEC], [HIDDEN, LANGS], (B, T, D), 4),
    "layer_norm_shared": (LayerNorm, {"epsilon": 1e-6}, [HIDDEN_SPEC], [HIDDEN], (B, T, D), 2),
    "layer_norm_ls": (LayerNorm, {"epsilon": 1e-6, "num_languages": L},
                      [HIDDEN_SPEC, LANG_SPEC], [HIDDEN, LANGS], (B, T, D), 2),
    "attention_ls": (SelfAttention, {"num_heads": 2, "num_languages": L},
                     [HIDDEN_SPEC, MASK_SPEC, LANG_SPEC], [HIDDEN, MASK, LANGS], (B, T, D), 4),
    "block_all_kinds": (
        TransformerBlock,
        {"num_heads": 2, "intermediate_dim": 16, "num_languages": L,
         "language_specific": ["adapter", "layer_norm", "ffn", "attention"], "adapter_dim": 4},
        [HIDDEN_SPEC, MASK_SPEC, LANG_SPEC], [HIDDEN, MASK, LANGS], (B, T, D), 4 + 4 + 2 + 2 + 8,
    ),
    "block_pre_ln_shared": (
        TransformerBlock, {"num_heads": 2, "intermediate_dim": 16, "normalize_first": True},
        [HIDDEN_SPEC, MASK_SPEC], [HIDDEN, MASK], (B, T, D), 12,
    ),
    "embedding": (
        MultilingualEmbedding, {"vocabulary_size": 30, "hidden_dim": D, "max_sequence_length": 10,
                                "num_languages": L},
        [((T,), "int32"), LANG_SPEC], [rng.randint(0, 30, (B, T)).astype("int32"), LANGS], (B, T, D), 5,
    ),
    "masked_lm_head": (
        MaskedLMHead, {"vocabulary_size": 30},
        [HIDDEN_SPEC, ((2,), "int32")], [HIDDEN, np.array([[0, 1], [2, 3], [4, 5], [1, 1]], "int32")],
        (B, 2, 30), 6,
    ),
    "token_head": (TokenClassificationHead, {"num_classes": 5}, [HIDDEN_SPEC], [HIDDEN], (B, T, 5), 2),
    "sentence_head": (SequenceClassificationHead, {"num_classes": 3},
                      [HIDDEN_SPEC, MASK_SPEC], [HIDDEN, MASK], (B, 3), 2),
    "pooled_embedding": (PooledEmbedding, {"normalize": True}, [HIDDEN_SPEC, MASK_SPEC], [HIDDEN, MASK], (B, D), 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_battery(case, tmp_path):
    layer_cls, kwargs, specs, data, shape, num_weights = CASES[case]
    run_layer_battery(layer_cls, kwargs, specs, data, shape, num_weights, tmp_path)
