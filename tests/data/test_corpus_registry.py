"""Corpus kinds register themselves; `load_corpus`, config validation and a study find them by name."""

import io
import os

import pytest

from tf_metaling import configs
from tf_metaling.data.corpora import CORPUS_KINDS, Corpus, load_corpus, register_corpus
from tf_metaling.study.comparison_study import ComparisonStudy
from tf_metaling.training.mlm_inputs import build_mlm_inputs

from ..helpers import study_config as study_config_of

SENTENCES = ["the cat sat on the mat", "a dog ran to the park", "birds sing in the morning"]


class EchoCorpus(Corpus):
    """A tiny corpus of the test's own kind: every language has the same three sentences."""

    kind = "test_echo"

    def __init__(self, languages, seed):
        self.languages = tuple(languages)
        self.groups = {"high": list(languages), "low": []}
        self.seed = seed

    @classmethod
    def from_config(cls, data_config, seed=0, log=None):
        return cls(list(data_config.languages), seed)

    def text_sources(self, split):
        return {code: list(SENTENCES) for code in self.languages}


@pytest.fixture
def echo_kind():
    register_corpus(EchoCorpus)
    yield EchoCorpus.kind
    CORPUS_KINDS.unregister(EchoCorpus.kind)


def _config(kind):
    config = configs.ExperimentConfig()
    config.override({"data": {"corpus": kind, "languages": ["aa", "bb"], "vocab_size": 60}}, is_strict=True)
    return config


def test_builtin_kinds_are_registered_by_the_package():
    assert tuple(CORPUS_KINDS) == ("builtin", "directory", "files", "synthetic")
    assert configs.CORPORA is CORPUS_KINDS  # validation asks the registry, no second list


def test_a_registered_kind_is_found_by_name(echo_kind, tmp_path):
    config = configs.validate(_config(echo_kind))
    corpus = load_corpus(config.data, seed=3)
    assert isinstance(corpus, EchoCorpus) and corpus.languages == ("aa", "bb") and corpus.seed == 3
    # The trainer's inputs and a study load the corpus the same way.
    inputs = build_mlm_inputs(config.data, model_dir=str(tmp_path / "run"))
    assert inputs.train_sources == {"aa": SENTENCES, "bb": SENTENCES}
    assert inputs.tokenizer.token_to_id("the") > 4
    study_config = study_config_of("study_small", {"variants": ["mono"], "seeds": [0],
                                                   "run": {"data": {"corpus": echo_kind, "languages": ["aa", "bb"]}}})
    study = ComparisonStudy(study_config, str(tmp_path / "study"), log=io.StringIO())
    assert isinstance(study.corpus, EchoCorpus) and study.languages == ["aa", "bb"]
    assert not os.path.exists(tmp_path / "study")  # loading writes nothing
    with pytest.raises(ValueError, match="'test_echo' is already registered"):
        CORPUS_KINDS.register(echo_kind, lambda data_config, seed, log: None)


def test_an_unknown_kind_names_the_field_and_the_registered_kinds(echo_kind):
    config = _config("nope")
    expected = r"config field data\.corpus: 'nope' is not one of \('builtin', 'directory', 'files', 'synthetic', 'test_echo'\)"
    with pytest.raises(ValueError, match=expected):
        configs.validate(config)
    with pytest.raises(ValueError, match="config field data.corpus: 'nope' is not one of builtin, directory, files, "
                                         "synthetic, test_echo."):
        load_corpus(config.data)
