"""Fixtures of the studies on a pretrained preset (the fine-tuning comparison, the transfer protocol)."""

import pytest

from tests.models import pretrained_fixtures as fixtures
from tf_metaling.data.corpora import build_builtin_corpus

from ..data.corpus_fixtures import write_fake_packages


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """``(cache_dir, preset)``: the built-in corpus from fake packages, and a tiny random XLM-R preset."""
    pytest.importorskip("keras_hub")
    pins, downloader = write_fake_packages(str(tmp_path_factory.mktemp("packages")))
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    build_builtin_corpus(cache_dir, pins, downloader)
    preset = fixtures.write_xlm_roberta_preset(tmp_path_factory.mktemp("preset") / "xlmr")
    return cache_dir, str(preset)
