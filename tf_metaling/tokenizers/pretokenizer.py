"""Text normalisation and word splitting that runs inside the TensorFlow graph.

The pretokenizer turns raw sentences into the "words" the WordPiece vocabulary
is learned on and applied to. It is one function used in both places, so a
vocabulary never meets words split differently from the ones it was trained on:
`WordPieceTokenizer.train` counts words with it, and
`WordPieceTokenizer.tokenize` runs it in the graph (and therefore inside
exported SavedModels).

Steps: optional Unicode normalisation (NFC by default, which composes Arabic,
Indic and Latin combining sequences consistently without stripping the marks
that those scripts need), optional Unicode lower-casing, whitespace and control
characters -> a single space, every punctuation or symbol character and every
CJK/kana character becomes its own word (these scripts do not separate words
with spaces), then a split on spaces.
"""

from __future__ import annotations

import tensorflow as tf

NORMALIZATION_FORMS = (None, "NFC", "NFKC", "NFD", "NFKD")

# RE2 syntax (TensorFlow's regex engine). \s in RE2 is ASCII-only, hence \p{Z}.
_SPACE_PATTERN = r"[\s\p{Z}\p{Cc}]+"
_ISOLATED_PATTERN = r"([\p{P}\p{S}\p{Han}\p{Hiragana}\p{Katakana}])"


class Pretokenizer:
    """Normalises strings and splits them into words, in the graph.

    Args:
        lower_case: apply Unicode lower-casing (`tf.strings.lower`, UTF-8).
        normalization_form: one of ``None, "NFC", "NFKC", "NFD", "NFKD"``.

    Example:
    >>> Pretokenizer().split(tf.constant(["Hello, World!"])).to_list()
    [[b'hello', b',', b'world', b'!']]
    """

    def __init__(self, lower_case: bool = True, normalization_form: str | None = "NFC"):
        if normalization_form not in NORMALIZATION_FORMS:
            raise ValueError(
                f"normalization_form={normalization_form!r}: expected one of {NORMALIZATION_FORMS}."
            )
        self.lower_case = bool(lower_case)
        self.normalization_form = normalization_form

    def normalize(self, strings: tf.Tensor) -> tf.Tensor:
        """Normalised strings, same shape; words separated by single spaces."""
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        if self.normalization_form is not None:
            # Imported here so that modules which only need the configuration
            # (e.g. to read a saved tokenizer config) do not load custom ops.
            import tensorflow_text as text

            strings = text.normalize_utf8(strings, self.normalization_form)
        if self.lower_case:
            strings = tf.strings.lower(strings, encoding="utf-8")
        strings = tf.strings.regex_replace(strings, _ISOLATED_PATTERN, r" \1 ")
        return tf.strings.regex_replace(strings, _SPACE_PATTERN, " ")

    def split(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """[...] strings -> [..., (words)] normalised words."""
        return tf.strings.split(self.normalize(strings))

    def get_config(self) -> dict:
        return {"lower_case": self.lower_case, "normalization_form": self.normalization_form}
