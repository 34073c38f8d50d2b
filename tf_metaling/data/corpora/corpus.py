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

Tasks are `tf_metaling.data.tasks` objects: `RetrievalSet` (X -> pivot),
`ClassificationTask` (trained on the pivot, zero-shot elsewhere) and
`TaggingTask` (in-language POS or NER).
"""

from __future__ import annotations

from typing import Optional


class Corpus:
    """What a corpus offers. Subclasses set `languages` and `groups` and implement the text."""

    kind = "corpus"
    languages: tuple = ()
    groups: dict = {}
    # Synthetic languages transform token ids in the pipeline; real corpora have none.
    language_transforms: Optional[dict] = None
    # Their definitions (a `SyntheticLanguages`), recorded in each model_dir so exports repeat them.
    synthetic = None

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
        from tf_metaling.languages import LanguageVocabulary

        return LanguageVocabulary(list(self.languages))

    def describe(self) -> str:
        return f"{self.kind} corpus: {', '.join(self.languages)}"


def load_corpus(data_config, seed: int = 0, log=None) -> Corpus:
    """The corpus a `DataConfig` names, loaded and validated (errors name file:line)."""
    kind = data_config.corpus
    languages = list(data_config.languages) if data_config.languages else None
    if kind == "builtin":
        from tf_metaling.data.corpora.builtin_corpus import load_builtin_corpus

        return load_builtin_corpus(
            cache_dir=data_config.cache_dir or None, languages=languages,
            low_resource_size=data_config.low_resource_size, log=log,
        )
    if kind == "directory":
        from tf_metaling.data.corpora.directory_corpus import DirectoryCorpus

        if not data_config.corpus_dir:
            raise ValueError("config field data.corpus_dir: required with data.corpus=directory.")
        return DirectoryCorpus(data_config.corpus_dir, languages=languages)
    if kind == "files":
        from tf_metaling.data.corpora.file_list_corpus import FileListCorpus

        return FileListCorpus(data_config.train_files, data_config.valid_files, languages)
    if kind == "synthetic":
        from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus

        return SyntheticCorpus(
            languages or [spec.partition(":")[0] for spec in data_config.synthetic_languages] or ["en", "xx"],
            # The text and its tokenizer do not depend on the run's seed: every seed of a study
            # sees the same languages (the seed varies initialisation and batch order).
            vocab_size=data_config.vocab_size, seed=0, specs=list(data_config.synthetic_languages),
            source=data_config.synthetic_source, train_per_language=data_config.synthetic_train_sentences,
            cache_dir=data_config.cache_dir or None,
        )
    raise ValueError(f"config field data.corpus: {kind!r} is not one of builtin, directory, files, synthetic.")
