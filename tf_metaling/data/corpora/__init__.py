"""Corpora: the `Corpus` interface, its registry of kinds, and the built-in kinds.

Importing this package registers the built-in kinds (``data.corpus=``
builtin, directory, files, synthetic; see `corpus`); `load_corpus` loads the
kind a `DataConfig` names. The built-in corpus is obtained with pip only (see
`builtin_corpus`).
"""

from tf_metaling.data.corpora.builtin_corpus import (
    BUILTIN_PACKAGES,
    PAPER_HIGH_RESOURCE,
    PAPER_LANGUAGES,
    PAPER_LOW_RESOURCE,
    PAPER_STAND_INS,
    SPLITS,
    BuiltinCorpus,
    build_builtin_corpus,
    corpus_root,
    load_builtin_corpus,
    split_of,
)
from tf_metaling.data.corpora.corpus import CORPUS_KINDS, Corpus, load_corpus, register_corpus
from tf_metaling.data.corpora.directory_corpus import DirectoryCorpus
from tf_metaling.data.corpora.file_list_corpus import FileListCorpus
from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus

__all__ = [
    "BUILTIN_PACKAGES",
    "CORPUS_KINDS",
    "PAPER_HIGH_RESOURCE",
    "PAPER_LANGUAGES",
    "PAPER_LOW_RESOURCE",
    "PAPER_STAND_INS",
    "SPLITS",
    "BuiltinCorpus",
    "Corpus",
    "DirectoryCorpus",
    "FileListCorpus",
    "SyntheticCorpus",
    "build_builtin_corpus",
    "corpus_root",
    "load_builtin_corpus",
    "load_corpus",
    "register_corpus",
    "split_of",
]
