"""Synthetic languages made from one source text (`tf_metaling.data.synthetic`), as a `Corpus`.

Every language carries exactly the same content: each is the source text
with its token ids moved into the language's own id range (except a stated
fraction of shared ids) and, optionally, its word order reversed. What two
languages share is therefore known exactly, and so is the ground truth of
every task:

- retrieval: the translation of a test sentence in language X is the same
  test sentence in the pivot (every language's test split is the same
  sentences);
- classification: the label is computed from the source sentence (does it
  contain the task's word?), so it is identical in every language; trained on
  the pivot, tested zero-shot on the others.

Languages are given as specs (`parse_language_spec`): ``"en"`` (the first is
the untransformed source), ``"lo:share=0.25,resource=0.1"``,
``"hi:reverse"``. ``resource`` is the fraction of a full language's training
text the language gets (the low-resource sweep). Training text is disjoint
between languages: language i gets every n-th source sentence (offset i), cut
to its resource fraction. The source is the toy grammar (``"toy"``), the
built-in corpus (``"builtin:en"``) or the user's corpus directory
(``"directory:DIR:en"``). The corpus brings its own tokenizer, learned on the
source's training text; the model's vocabulary is the languages' id ranges.
"""

from __future__ import annotations

import collections
import re
from typing import Optional, Sequence

from tf_metaling.data.corpora.builtin_corpus import load_builtin_corpus
from tf_metaling.data.corpora.corpus import Corpus, register_corpus
from tf_metaling.data.corpora.directory_corpus import DirectoryCorpus
from tf_metaling.data.sentence_classification import ClassificationExample
from tf_metaling.data.synthetic import SyntheticLanguage, SyntheticLanguages, toy_sentences
from tf_metaling.data.tasks import ClassificationTask, RetrievalSet
from tf_metaling.data.text_reader import TextLineReader
from tf_metaling.tokenizers import WordPieceTokenizer

TEST_SENTENCES = 300  # test sentences per language (the same sentences in every language)
TASK_NAME = "contains_word"


def parse_language_spec(spec: str, index: int) -> tuple[SyntheticLanguage, float]:
    """``"lo:share=0.25,reverse,resource=0.1"`` -> (the language, its resource fraction).

    The language at `index` 0 is the source itself (no shift); language i
    shifts its ids into range i (apart from its shared fraction).
    """
    code, _, options = spec.partition(":")
    code = code.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", code):
        raise ValueError(f"synthetic language spec {spec!r}: the code {code!r} must be a letter then letters, "
                         "digits, '_' or '-'.")
    share, reverse, resource = 0.0, False, 1.0
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, _, value = option.partition("=")
        try:
            if name == "share":
                share = float(value)
            elif name == "resource":
                resource = float(value)
            elif name == "reverse" and value in ("", "1", "true"):
                reverse = True
            else:
                raise ValueError(f"unknown option {option!r}")
        except ValueError as error:
            raise ValueError(f"synthetic language spec {spec!r}: {error}; expected options share=<0..1>, "
                             "resource=<0..1>, reverse.") from error
    if not 0.0 < resource <= 1.0:
        raise ValueError(f"synthetic language spec {spec!r}: resource={resource}, expected a fraction in (0, 1].")
    if index == 0 and (share or reverse):
        raise ValueError(f"synthetic language spec {spec!r}: the first language is the source text itself; "
                         "give share / reverse to the others.")
    try:
        return SyntheticLanguage(code, shift=index, reverse=reverse, share=share), resource
    except ValueError as error:
        raise ValueError(f"synthetic language spec {spec!r}: {error}") from error


def source_sentences(source: str, seed: int, cache_dir: Optional[str] = None, train: int = 4000,
                     valid: int = 400) -> dict:
    """``{split: sentences}`` of the source text (train, valid, test); toy text is generated to size."""
    if source == "toy":
        return {"train": toy_sentences(train, seed=seed), "valid": toy_sentences(valid, seed=seed + 1),
                "test": toy_sentences(TEST_SENTENCES * 2, seed=seed + 2)}
    kind, _, rest = source.partition(":")
    if kind == "builtin" and rest:
        corpus = load_builtin_corpus(cache_dir=cache_dir, languages=[rest])
    elif kind == "directory" and ":" in rest:
        root, _, rest = rest.rpartition(":")
        corpus = DirectoryCorpus(root, languages=[rest])
    else:
        raise ValueError(f"config field data.synthetic_source: {source!r}; expected 'toy', 'builtin:<code>' or "
                         "'directory:<DIR>:<code>'.")

    def read(value):
        return list(value) if isinstance(value, (list, tuple)) else [s for s in TextLineReader(value, rest)]

    return {split: read(corpus.text_sources(split)[rest]) for split in ("train", "valid", "test")}


def task_word(sentences: Sequence[str]) -> str:
    """The word (3+ letters) whose share of `sentences` containing it is closest to one half."""
    counts = collections.Counter()
    for sentence in sentences:
        counts.update({w for w in sentence.lower().split() if len(w) >= 3 and w.isalpha()})
    if not counts:
        raise ValueError("the source text has no word of 3+ letters to build the classification task on.")
    half = len(sentences) / 2
    return min(counts, key=lambda w: (abs(counts[w] - half), w))


@register_corpus
class SyntheticCorpus(Corpus):
    """Languages made from one source text, with exact ground truth.

    Args:
        languages: the codes to use (a subset of the specs' codes, in any order).
        vocab_size: size of the source's WordPiece vocabulary.
        seed: seed of the toy text and the tokenizer.
        specs: language specs (`parse_language_spec`); default: the codes, the
            first as source, odd ones reversed (the old two-kind setting).
        source: "toy", "builtin:<code>" or "directory:<DIR>:<code>".
        train_per_language: training sentences of a full-resource language (at most).
    """

    kind = "synthetic"

    def __init__(self, languages, vocab_size: int = 200, seed: int = 0, train_per_language: int = 400,
                 valid_per_language: int = 200, specs: Optional[Sequence[str]] = None, source: str = "toy",
                 cache_dir: Optional[str] = None):
        if not specs:
            specs = [code + (":reverse" if i % 2 else "") for i, code in enumerate(languages)]
        parsed = [parse_language_spec(spec, i) for i, spec in enumerate(specs)]
        defined = [language.code for language, _ in parsed]
        unknown = [code for code in languages if code not in defined]
        if unknown:
            raise ValueError(f"data.languages {unknown} are not among the synthetic languages {defined} "
                             "(config field data.synthetic_languages).")
        self.languages = tuple(languages)
        self.resources = {language.code: resource for language, resource in parsed}
        full = [code for code in self.languages if self.resources[code] >= 1.0]
        self.groups = {"high": full, "low": [code for code in self.languages if code not in full]}
        count = train_per_language * len(parsed)
        text = source_sentences(source, seed, cache_dir, train=count, valid=valid_per_language * len(parsed))
        self.source = source
        self._train = text["train"][:count]
        self._valid = text["valid"][:valid_per_language * len(parsed)]
        test = list(dict.fromkeys(text["test"]))  # distinct sentences: each has exactly one translation
        self._test = test[:TEST_SENTENCES]
        self._tokenizer = WordPieceTokenizer.train({"base": self._train}, vocab_size=vocab_size, seed=seed)
        self.synthetic = SyntheticLanguages(self._tokenizer.vocab_size, [language for language, _ in parsed])
        self.language_transforms = self.synthetic.transforms()
        self._word = task_word(self._train)

    @classmethod
    def from_config(cls, data_config, seed: int = 0, log=None) -> SyntheticCorpus:
        languages = list(data_config.languages) or [spec.partition(":")[0] for spec in data_config.synthetic_languages]
        return cls(
            languages or ["en", "xx"],
            # The text and its tokenizer do not depend on the run's seed: every seed of a study
            # sees the same languages (the seed varies initialisation and batch order).
            vocab_size=data_config.vocab_size, seed=0, specs=list(data_config.synthetic_languages),
            source=data_config.synthetic_source, train_per_language=data_config.synthetic_train_sentences,
            cache_dir=data_config.cache_dir or None,
        )

    @staticmethod
    def definitions(languages, base_vocab_size: int) -> SyntheticLanguages:
        """Language i shifts its ids into range i; odd languages also reverse the word order."""
        return SyntheticLanguages(
            base_vocab_size,
            [SyntheticLanguage(code, shift=i, reverse=bool(i % 2)) for i, code in enumerate(languages)],
        )

    def describe(self) -> str:
        parts = []
        for code in self.languages:
            language = self.synthetic.language(code)
            what = ["source text"] if language.shift == 0 else [f"shares {self.synthetic.shared_fraction(code):.0%} "
                                                              "of the ids"]
            what += ["reversed word order"] if language.reverse else []
            what += [f"{self.resources[code]:g} of the training text"] if self.resources[code] < 1 else []
            parts.append(f"{code} ({', '.join(what)})")
        return f"synthetic corpus from {self.source} text: {'; '.join(parts)}"

    def text_sources(self, split: str) -> dict:
        if split == "train":
            codes = self.synthetic.codes
            shares = {code: self._train[i::len(codes)] for i, code in enumerate(codes)}
            return {code: shares[code][:max(1, int(len(shares[code]) * self.resources[code]))]
                    for code in self.languages}
        sentences = self._valid if split == "valid" else self._test
        return {code: list(sentences) for code in self.languages}

    def fixed_tokenizer(self):
        return self._tokenizer

    def vocab_size(self, tokenizer) -> int:
        return self.synthetic.vocab_size

    def retrieval_sets(self, pivot: str, max_pairs: Optional[int] = None) -> dict:
        """X -> pivot on the test sentences: sentence i of X is the translation of sentence i of the pivot."""
        if pivot not in self.languages:
            return {}
        sentences = self._test[:max_pairs] if max_pairs else list(self._test)
        return {code: RetrievalSet(code, pivot, list(sentences), list(sentences), list(range(len(sentences))))
                for code in self.languages if code != pivot}

    def classification_tasks(self, pivot: str) -> dict:
        """Does the source sentence contain the task word? Labels identical in every language."""
        if pivot not in self.languages:
            return {}
        labels = ("absent", "present")

        def examples(sentences, code):
            return [ClassificationExample(s, labels[self._word in s.lower().split()], code, source="synthetic")
                    for s in sentences]

        train = examples(self.text_sources("train")[pivot], pivot)
        return {TASK_NAME: ClassificationTask(
            name=TASK_NAME, label_names=labels, train_language=pivot, train=train,
            valid={code: examples(self._valid, code) for code in self.languages},
            test={code: examples(self._test, code) for code in self.languages},
            train_by_language={code: examples(self.text_sources("train")[code], code) for code in self.languages},
        )}

    @property
    def task_word(self) -> str:
        return self._word
