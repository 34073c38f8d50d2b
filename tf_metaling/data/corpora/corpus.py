"""One interface for every corpus: text per language and split, and the downstream tasks.

Pretraining inputs, the comparison study and the task builders ask a `Corpus`
for what they need and never branch on where the text came from:

- `BuiltinCorpus` (``data.corpus=builtin``): the parallel Quran/Bible text
  obtained with pip, its verse classification tasks, en <-> X retrieval, and
  the Turkish POS task (Turkish Web Treebank) when Turkish is selected;
- `DirectoryCorpus` (``data.corpus=directory``, ``data.corpus_dir=DIR``): the
  user's own directory of text and task files (see `directory_corpus`);
- `FileListCorpus` (``data.corpus=files``): text files named per language;
- `SyntheticCorpus` (``data.corpus=synthetic``): languages made from one text
  by transforming token ids, with exact ground truth.

Each kind registers itself when its module is imported (`register_corpus`, a
class decorator; ``tf_metaling.data.corpora`` imports the built-in kinds):
`CORPUS_KINDS` maps the ``data.corpus`` name to the class's `from_config`,
and `load_corpus` and config validation look names up there. A kind of your
own is a `Corpus` subclass with a `kind` and a `from_config`, decorated with
`register_corpus`.

Tasks are `tf_metaling.data.tasks` objects: `RetrievalSet` (X -> pivot),
`ClassificationTask` (trained on the pivot, zero-shot elsewhere) and
`TaggingTask` (in-language POS or NER).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Optional

from tf_metaling.languages import LanguageVocabulary


class Corpus:
    """What a corpus offers. Subclasses set `languages` and `groups` and implement the text."""

    # The ``data.corpus`` name the class is registered under (`register_corpus`).
    kind = "corpus"
    languages: tuple = ()
    groups: dict = {}
    # Synthetic languages transform token ids in the pipeline; real corpora have none.
    language_transforms: Optional[dict] = None
    # Their definitions (a `SyntheticLanguages`), recorded in each model_dir so exports repeat them.
    synthetic = None

    @classmethod
    def from_config(cls, data_config, seed: int = 0, log=None) -> Corpus:
        """The corpus a `DataConfig` with ``corpus == cls.kind`` describes, loaded and validated."""
        raise NotImplementedError

    def text_sources(self, split: str) -> dict:
        """``{code: sentences (a list) or text file path(s)}`` of a split (train / valid / test)."""
        raise NotImplementedError

    def fixed_tokenizer(self):
        """A tokenizer the corpus comes with (synthetic languages), or None: learn one from the text."""
        return None

    def vocab_size(self, tokenizer) -> int:
        """Model vocabulary size for `tokenizer` (synthetic languages add their shifted ids)."""
        return tokenizer.vocab_size

    def retrieval_sets(self, pivot: str, max_pairs: Optional[int] = None) -> dict:
        """``{X: RetrievalSet(X -> pivot)}``; empty when the corpus has no aligned text."""
        return {}

    def classification_tasks(self, pivot: str) -> dict:
        """``{name: ClassificationTask}`` trained on `pivot`, tested zero-shot on the others."""
        return {}

    def tagging_tasks(self) -> dict:
        """``{name: TaggingTask}``: trained and tested in each language that has data."""
        return {}

    def language_vocabulary(self):
        return LanguageVocabulary(list(self.languages))

    def describe(self) -> str:
        return f"{self.kind} corpus: {', '.join(self.languages)}"


# (data_config, seed, log) -> Corpus
CorpusLoader = Callable[..., Corpus]


class CorpusKinds(Mapping):
    """The registered corpus kinds: ``data.corpus`` name -> loader ``(data_config, seed, log)``.

    Read-only as a mapping (iteration is sorted by name); `register_corpus`
    fills it. Its repr is the tuple of names, as error messages show it.
    """

    def __init__(self):
        self._loaders: dict[str, CorpusLoader] = {}

    def register(self, kind: str, loader: CorpusLoader) -> None:
        """Adds `kind`; a name already taken by another loader raises ValueError."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"corpus kind {kind!r}: expected a non-empty name.")
        if kind in self._loaders and self._loaders[kind] != loader:
            raise ValueError(f"corpus kind {kind!r} is already registered ({self._loaders[kind]}).")
        self._loaders[kind] = loader

    def unregister(self, kind: str) -> None:
        del self._loaders[kind]

    def __getitem__(self, kind: str) -> CorpusLoader:
        return self._loaders[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaders))

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return repr(tuple(self))


CORPUS_KINDS = CorpusKinds()


def register_corpus(corpus_class: type[Corpus]) -> type[Corpus]:
    """Class decorator: ``data.corpus=<corpus_class.kind>`` loads with `corpus_class.from_config`."""
    CORPUS_KINDS.register(corpus_class.kind, corpus_class.from_config)
    return corpus_class


def load_corpus(data_config, seed: int = 0, log=None) -> Corpus:
    """The corpus a `DataConfig` names, loaded and validated (errors name file:line)."""
    kind = data_config.corpus
    if kind not in CORPUS_KINDS:
        raise ValueError(f"config field data.corpus: {kind!r} is not one of {', '.join(CORPUS_KINDS)}.")
    return CORPUS_KINDS[kind](data_config, seed, log)
