"""Synthetic languages derived from one corpus, for controlled experiments.

Following K et al. (2020, "Cross-lingual ability of multilingual BERT") and
Dufter & Schuetze (2020, "Identifying necessary elements for BERT's
multilinguality"), a "language" can be made from another by

- **shift**: moving every non-special token id into a disjoint range
  (``id + k * (V - NUM_SPECIAL_TOKENS)``), so the two share no subword but
  have identical structure;
- **reverse**: reversing the word order of every sentence;
- both.

Special tokens keep their ids in every language. The transforms act on
tokenised word pieces ``[B, (words), (pieces)]`` in the graph and plug into
`pipelines.mlm_dataset(language_transforms=...)`; the model's vocabulary must
be `SyntheticLanguages.vocab_size`. `transform_by_language` applies each
example's own transform to a mixed-language batch (exported text signatures),
and ``synthetic_languages.json`` in a model_dir records the definitions
(`save` / `load`) so an export can repeat them exactly. `toy_sentences` generates a small
deterministic corpus with real agreement structure, so fast tests and the
quick demo need no download at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Sequence

import tensorflow as tf

from tf_metaling.data.tokenizer import NUM_SPECIAL_TOKENS

SYNTHETIC_KINDS = ("original", "shift", "reverse", "shift+reverse")
# Written into a model_dir trained on synthetic languages (see `SyntheticLanguages.save`).
SYNTHETIC_LANGUAGES_FILE = "synthetic_languages.json"


def shift_token_ids(ids, offset: int):
    """Adds `offset` to every non-special id (dense or ragged int tensors)."""
    if isinstance(ids, tf.RaggedTensor):
        return ids.with_flat_values(shift_token_ids(ids.flat_values, offset))
    ids = tf.convert_to_tensor(ids)
    return tf.where(ids >= NUM_SPECIAL_TOKENS, ids + tf.cast(offset, ids.dtype), ids)


def reverse_word_order(word_pieces: tf.RaggedTensor, rows=None) -> tf.RaggedTensor:
    """Reverses the words of each row of ``[B, (words), (pieces)]``; pieces keep
    their order inside a word. With `rows` (bool ``[B]``), only the rows where
    it is True are reversed."""
    words = word_pieces  # [B, (W), (P)]
    starts = words.row_starts()
    lengths = words.row_lengths()
    row = words.value_rowids()
    word_index = tf.range(tf.shape(row, out_type=row.dtype)[0], dtype=row.dtype)
    position = word_index - tf.gather(starts, row)
    source = tf.gather(starts, row) + tf.gather(lengths, row) - 1 - position
    if rows is not None:
        source = tf.where(tf.gather(tf.convert_to_tensor(rows, tf.bool), row), source, word_index)
    return tf.RaggedTensor.from_row_splits(
        tf.gather(words.values, source), words.row_splits, validate=False
    )


def reverse_words(text: str) -> str:
    """Text-level word reversal (whitespace words), for inspection and tests."""
    return " ".join(reversed(text.split()))


@dataclasses.dataclass(frozen=True)
class SyntheticLanguage:
    """A derived language: `shift` selects the id range (0 = original ids)."""

    code: str
    shift: int = 0
    reverse: bool = False

    def __post_init__(self):
        if self.shift < 0:
            raise ValueError(f"{self.code}: shift={self.shift}, expected >= 0.")


class SyntheticLanguages:
    """A set of synthetic languages over one base tokenizer vocabulary.

    Args:
        base_vocab_size: vocabulary size V of the base tokenizer.
        languages: the `SyntheticLanguage`s.

    Example:
    >>> langs = SyntheticLanguages.standard(100, "en")
    >>> [l.code for l in langs.languages], langs.vocab_size
    (['en', 'en-shift', 'en-rev', 'en-shift-rev'], 195)
    """

    def __init__(self, base_vocab_size: int, languages: Sequence[SyntheticLanguage]):
        if base_vocab_size <= NUM_SPECIAL_TOKENS:
            raise ValueError(f"base_vocab_size={base_vocab_size} leaves no regular token.")
        codes = [lang.code for lang in languages]
        if len(set(codes)) != len(codes) or not codes:
            raise ValueError(f"Synthetic language codes must be unique and non-empty: {codes}.")
        self.base_vocab_size = int(base_vocab_size)
        self.languages = tuple(languages)
        self.span = self.base_vocab_size - NUM_SPECIAL_TOKENS

    @classmethod
    def standard(cls, base_vocab_size: int, base_code: str = "en") -> SyntheticLanguages:
        """The original language plus shifted, reversed, shifted+reversed copies."""
        return cls(
            base_vocab_size,
            [
                SyntheticLanguage(base_code),
                SyntheticLanguage(f"{base_code}-shift", shift=1),
                SyntheticLanguage(f"{base_code}-rev", reverse=True),
                SyntheticLanguage(f"{base_code}-shift-rev", shift=2, reverse=True),
            ],
        )

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    @property
    def vocab_size(self) -> int:
        """Ids needed by a model that reads all the languages."""
        return NUM_SPECIAL_TOKENS + (max(lang.shift for lang in self.languages) + 1) * self.span

    def language(self, code: str) -> SyntheticLanguage:
        language = {lang.code: lang for lang in self.languages}.get(code)
        if language is None:
            raise KeyError(f"Unknown synthetic language {code!r}; have {self.codes}.")
        return language

    def transform(self, code: str):
        language = self.language(code)
        offset = language.shift * self.span

        def apply(word_pieces: tf.RaggedTensor) -> tf.RaggedTensor:
            if language.reverse:
                word_pieces = reverse_word_order(word_pieces)
            if offset:
                word_pieces = shift_token_ids(word_pieces, offset)
            return word_pieces

        return apply

    def transforms(self) -> dict:
        """``{code: transform}`` for `pipelines.mlm_dataset(language_transforms=...)`."""
        return {code: self.transform(code) for code in self.codes}

    def transform_by_language(self, word_pieces: tf.RaggedTensor, language_ids, codes) -> tf.RaggedTensor:
        """Each example's own transform, in the graph, for a batch that mixes languages.

        Args:
            word_pieces: int ``[B, (words), (pieces)]`` base-vocabulary ids.
            language_ids: int ``[B]``, indices into `codes`.
            codes: the language codes in index order (e.g. a model's), each
                one of `codes` of this set.
        """
        table = [self.language(code) for code in codes]
        offsets = tf.constant([lang.shift * self.span for lang in table], word_pieces.dtype)
        reverse = tf.constant([lang.reverse for lang in table], tf.bool)
        language_ids = tf.convert_to_tensor(language_ids)
        word_pieces = reverse_word_order(word_pieces, rows=tf.gather(reverse, language_ids))
        example_of_piece = tf.gather(word_pieces.value_rowids(), word_pieces.values.value_rowids())
        offset = tf.gather(tf.gather(offsets, language_ids), example_of_piece)
        ids = word_pieces.flat_values
        return word_pieces.with_flat_values(tf.where(ids >= NUM_SPECIAL_TOKENS, ids + offset, ids))

    def id_range(self, code: str) -> tuple[int, int]:
        """``[low, high)``: the regular (non-special) ids of language `code`."""
        low = NUM_SPECIAL_TOKENS + self.language(code).shift * self.span
        return low, low + self.span

    def to_dict(self) -> dict:
        return {
            "base_vocab_size": self.base_vocab_size,
            "languages": [dataclasses.asdict(lang) for lang in self.languages],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "synthetic languages") -> SyntheticLanguages:
        try:
            languages = [SyntheticLanguage(str(d["code"]), int(d["shift"]), bool(d["reverse"]))
                         for d in data["languages"]]
            return cls(int(data["base_vocab_size"]), languages)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{source}: expected {{'base_vocab_size': int, 'languages': "
                f"[{{'code', 'shift', 'reverse'}}]}}; {type(error).__name__}: {error}"
            ) from error

    def save(self, model_dir: str) -> str:
        """Writes ``model_dir/synthetic_languages.json`` atomically; returns its path."""
        from tf_metaling.data.atomic_files import atomic_write_text

        path = os.path.join(model_dir, SYNTHETIC_LANGUAGES_FILE)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str) -> SyntheticLanguages | None:
        """The definitions a model_dir records, or None when it has none."""
        path = os.path.join(model_dir, SYNTHETIC_LANGUAGES_FILE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg}).") from error
        return cls.from_dict(data, source=path)

    def sources(self, sentences: Sequence[str], disjoint: bool = True) -> dict[str, list[str]]:
        """Base sentences for each language: disjoint interleaved shares (so no
        language sees another's exact sentences) or the same list for all."""
        sentences = list(sentences)
        if not disjoint:
            return {code: sentences for code in self.codes}
        n = len(self.languages)
        if len(sentences) < n:
            raise ValueError(f"Need at least {n} sentences to give each language a share.")
        return {code: sentences[i::n] for i, code in enumerate(self.codes)}

    def to_base_ids(self, ids):
        """Maps ids of any synthetic language back to base-vocabulary ids."""
        ids = tf.convert_to_tensor(ids)
        regular = ids >= NUM_SPECIAL_TOKENS
        base = (ids - NUM_SPECIAL_TOKENS) % self.span + NUM_SPECIAL_TOKENS
        return tf.where(regular, base, ids)


_NOUNS = (("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"),
          ("farmer", "farmers"), ("teacher", "teachers"), ("river", "rivers"),
          ("house", "houses"), ("tree", "trees"), ("song", "songs"))  # fmt: skip
_VERBS = (("sees", "see"), ("likes", "like"), ("finds", "find"), ("follows", "follow"),
          ("hears", "hear"), ("builds", "build"))  # fmt: skip
_ADJECTIVES = ("small", "old", "green", "quiet", "happy", "tall", "dark")
_PREPOSITIONS = ("near", "behind", "under", "beside")


def toy_sentences(count: int, seed: int = 0) -> list[str]:
    """Deterministic toy-English sentences with subject-verb agreement.

    ``the old cats see a dog near the river .``
    """
    rng = random.Random(seed)

    def noun_phrase():
        plural = rng.random() < 0.4
        words = [rng.choice(("the", "some")) if plural else rng.choice(("the", "a", "this"))]
        if rng.random() < 0.5:
            words.append(rng.choice(_ADJECTIVES))
        words.append(rng.choice(_NOUNS)[1 if plural else 0])
        return words, plural

    sentences = []
    for _ in range(count):
        subject, plural = noun_phrase()
        obj, _ = noun_phrase()
        words = subject + [rng.choice(_VERBS)[1 if plural else 0]] + obj
        if rng.random() < 0.4:
            place, _ = noun_phrase()
            words += [rng.choice(_PREPOSITIONS)] + place
        sentences.append(" ".join(words + ["."]))
    return sentences
