"""Synthetic languages made from one toy text (`tf_metaling.data.synthetic`), as a `Corpus`.

Every language carries exactly the same content: language i shifts every
non-special token id into its own range (no shared subword) and odd languages
also reverse the word order. The corpus brings its own tokenizer (learned on
the base text); the model's vocabulary is the shifted ranges together.
"""

from __future__ import annotations

from tf_metaling.data.corpora.corpus import Corpus
from tf_metaling.data.synthetic import SyntheticLanguage, SyntheticLanguages, toy_sentences
from tf_metaling.data.tokenizer import Tokenizer


class SyntheticCorpus(Corpus):
    """Languages derived from `toy_sentences` by shifting ids and reversing words.

    Args:
        languages: codes; the first is the untransformed base.
        vocab_size: size of the base WordPiece vocabulary.
        seed: seed of the toy text and the tokenizer.
        train_per_language / valid_per_language: toy sentences per language.
    """

    kind = "synthetic"

    def __init__(self, languages, vocab_size: int = 200, seed: int = 0, train_per_language: int = 400,
                 valid_per_language: int = 40):
        self.languages = tuple(languages)
        self.groups = {"high": list(self.languages), "low": []}
        self._train = toy_sentences(train_per_language * len(self.languages), seed=seed)
        self._valid = toy_sentences(valid_per_language * len(self.languages), seed=seed + 1)
        self._tokenizer = Tokenizer.train({"base": self._train}, vocab_size=vocab_size, seed=seed)
        self.synthetic = self.definitions(self.languages, self._tokenizer.vocab_size)
        self.language_transforms = self.synthetic.transforms()

    @staticmethod
    def definitions(languages, base_vocab_size: int) -> SyntheticLanguages:
        """Language i shifts its ids into range i; odd languages also reverse the word order."""
        return SyntheticLanguages(
            base_vocab_size,
            [SyntheticLanguage(code, shift=i, reverse=bool(i % 2)) for i, code in enumerate(languages)],
        )

    def text_sources(self, split: str) -> dict:
        return self.synthetic.sources(self._train if split == "train" else self._valid)

    def fixed_tokenizer(self):
        return self._tokenizer

    def vocab_size(self, tokenizer) -> int:
        return self.synthetic.vocab_size
