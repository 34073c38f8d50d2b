"""BERT's pretokenisation as keras-hub's `WordPieceTokenizer` does it, in the graph.

A converted BERT checkpoint must meet words split exactly as its own tokenizer
splits them, which differs from the project's `Pretokenizer` (its punctuation
and CJK classes, case folding instead of lower-casing, optional accent
stripping). This class runs keras-hub's steps with keras-hub's own patterns
(imported, so they cannot drift from the pinned keras-hub): CJK characters set
apart, optional NFD + removal of combining marks, a split on whitespace and
punctuation that keeps the punctuation, optional Unicode case folding.
"""

from __future__ import annotations

import tensorflow as tf

# The tensorflow-text ops `split` adds (the rest is core TensorFlow); checked against
# traced graphs in tests/models/test_pretrained.py.
BERT_PRETOKENIZER_OPS = ("CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets")


class BertPretokenizer:
    """Normalises strings and splits them into words like keras-hub's BERT tokenizer.

    Args:
        lower_case: Unicode case folding (keras-hub's ``lowercase``).
        strip_accents: NFD, then drop combining marks (keras-hub's ``strip_accents``).
        split_on_cjk: every CJK character is its own word.

    Example:
    >>> BertPretokenizer(lower_case=True).split(tf.constant(["Hello, World!"])).to_list()
    [[b'hello', b',', b'world', b'!']]
    """

    def __init__(self, lower_case: bool = False, strip_accents: bool = False, split_on_cjk: bool = True):
        self.lower_case = bool(lower_case)
        self.strip_accents = bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)

    def split(self, strings) -> tf.RaggedTensor:
        """[...] strings -> [..., (words)]."""
        # Loaded on first use: only converted BERT checkpoints split this way, keras-hub is large
        # and tensorflow-text registers custom ops.
        import tensorflow_text as text
        from keras_hub.src.tokenizers import word_piece_tokenizer as patterns

        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        if self.split_on_cjk:
            strings = tf.strings.regex_replace(strings, patterns.CJK_REGEX, r" \0 ")
        if self.strip_accents:
            strings = text.normalize_utf8(strings, "NFD")
            strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
        if self.split_on_cjk:
            delimiters, kept = patterns.WHITESPACE_PUNCTUATION_AND_CJK_REGEX, patterns.PUNCTUATION_AND_CJK_REGEX
        else:
            delimiters, kept = patterns.WHITESPACE_AND_PUNCTUATION_REGEX, patterns.PUNCTUATION_REGEX
        words = text.regex_split(strings, delim_regex_pattern=delimiters, keep_delim_regex_pattern=kept)
        if self.lower_case:
            words = text.case_fold_utf8(words)
        return words

    def get_config(self) -> dict:
        return {"lower_case": self.lower_case, "strip_accents": self.strip_accents, "split_on_cjk": self.split_on_cjk}
