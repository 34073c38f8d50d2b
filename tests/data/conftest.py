"""Fixtures shared by the data tests: fake corpus packages and a corpus built from them."""

import pytest

from tf_metaling.data.corpora import build_builtin_corpus

from .corpus_fixtures import write_fake_packages


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """``(pins, downloader)`` for the three fake archives."""
    return write_fake_packages(str(tmp_path_factory.mktemp("packages")))


@pytest.fixture(scope="session")
def cache(tmp_path_factory, packages):
    """A cache directory holding the corpus built from the fake archives."""
    pins, downloader = packages
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    build_builtin_corpus(cache_dir, pins, downloader)
    return cache_dir
