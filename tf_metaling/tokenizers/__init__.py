"""Tokenizers in the TensorFlow graph: text -> model inputs, the same in `tf.data`, training and SavedModels.

- `tokenizer`: `Tokenizer`, what every tokenizer offers (`encode`, `encode_pairs`,
  `vocab_size`, the special ids, `save` / `load`, its `file_name` in a model_dir).
- `wordpiece_tokenizer`: `WordPieceTokenizer`, the project's shared multilingual
  vocabulary (learned with `WordPieceTokenizer.train`, special ids fixed:
  ``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4``) or a BERT checkpoint's.
- `sentencepiece_tokenizer`: `SentencePieceTokenizer`, XLM-R's SentencePiece
  model with fairseq ids.
- `wordpiece_vocabulary`: learning a WordPiece vocabulary on language-balanced counts.
- `pretokenizer` / `bert_pretokenizer`: normalisation and word splitting before
  WordPiece (the project's, or keras-hub BERT's).

This package depends on `tf_metaling.errors`, `tf_metaling.language_sampling`,
`tf_metaling.languages` and `tf_metaling.atomic_files` only; `tf_metaling.data`
builds its pipelines on it.
"""

from tf_metaling.tokenizers.bert_pretokenizer import BERT_PRETOKENIZER_OPS, BertPretokenizer
from tf_metaling.tokenizers.pretokenizer import Pretokenizer
from tf_metaling.tokenizers.sentencepiece_tokenizer import SENTENCEPIECE_OPS, SentencePieceTokenizer
from tf_metaling.tokenizers.tokenizer import Tokenizer
from tf_metaling.tokenizers.wordpiece_tokenizer import (
    CLS_ID,
    CLS_TOKEN,
    MASK_ID,
    MASK_TOKEN,
    NUM_SPECIAL_TOKENS,
    PAD_ID,
    PAD_TOKEN,
    SEP_ID,
    SEP_TOKEN,
    SPECIAL_TOKENS,
    UNK_ID,
    UNK_TOKEN,
    WORDPIECE_OPS,
    WordPieceTokenizer,
)

__all__ = [
    "BERT_PRETOKENIZER_OPS",
    "CLS_ID",
    "CLS_TOKEN",
    "MASK_ID",
    "MASK_TOKEN",
    "NUM_SPECIAL_TOKENS",
    "PAD_ID",
    "PAD_TOKEN",
    "SENTENCEPIECE_OPS",
    "SEP_ID",
    "SEP_TOKEN",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "UNK_TOKEN",
    "WORDPIECE_OPS",
    "BertPretokenizer",
    "Pretokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
]
