"""Temperature sampling: q_l ∝ n_l^alpha, and observed frequencies in pipelines."""

import collections

import numpy as np
import pytest

from tf_metaling.data.pipelines import MlmPipelineConfig, mlm_dataset
from tf_metaling.data.synthetic import toy_sentences
from tf_metaling.language_sampling import language_sampling_probabilities
from tf_metaling.languages import LanguageVocabulary
from tf_metaling.tokenizers import WordPieceTokenizer

SIZES = {"en": 800, "ar": 200, "sw": 25}


def test_probabilities_follow_the_formula():
    for alpha in (0.0, 0.3, 0.5, 1.0):
        q = language_sampling_probabilities(SIZES, alpha)
        expected = {k: v**alpha for k, v in SIZES.items()}
        total = sum(expected.values())
        for lang in SIZES:
            assert q[lang] == pytest.approx(expected[lang] / total)
    assert language_sampling_probabilities(SIZES, 0.0)["sw"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "sizes, alpha", [({}, 0.5), ({"en": 0}, 0.5), ({"en": 10}, -1.0), ({"en": float("nan")}, 1)]
)
def test_bad_sampling_inputs_raise(sizes, alpha):
    with pytest.raises(ValueError):
        language_sampling_probabilities(sizes, alpha)


@pytest.fixture(scope="module")
def corpus():
    sentences = toy_sentences(1025, seed=4)
    sources = {"en": sentences[:800], "ar": sentences[800:1000], "sw": sentences[1000:]}
    return sources, WordPieceTokenizer.train(sources, vocab_size=120)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_mixed_batches_match_q_for_two_alphas(corpus, alpha):
    sources, tokenizer = corpus
    languages = LanguageVocabulary(["en", "ar", "sw"])
    config = MlmPipelineConfig(
        batch_size=64, sequence_length=16, max_predictions=3, alpha=alpha, packing="sentence"
    )
    counts = collections.Counter()
    for batch in mlm_dataset(sources, tokenizer, languages, config).take(120):
        counts.update(batch["language_ids"].numpy().tolist())
    total = sum(counts.values())
    q = language_sampling_probabilities(SIZES, alpha)
    for lang in SIZES:
        observed = counts[languages.index(lang)] / total
        # 7680 draws: 4 standard errors of a binomial share stay below 0.023.
        assert observed == pytest.approx(q[lang], abs=4 * np.sqrt(q[lang] * (1 - q[lang]) / total))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_one_language_batches_match_q_for_two_alphas(corpus, alpha):
    sources, tokenizer = corpus
    languages = LanguageVocabulary(["en", "ar", "sw"])
    config = MlmPipelineConfig(
        batch_size=2, sequence_length=12, max_predictions=1, alpha=alpha,
        packing="sentence", batching="one_language",
    )  # fmt: skip
    counts = collections.Counter()
    for batch in mlm_dataset(sources, tokenizer, languages, config).take(600):
        ids = batch["language_ids"].numpy()
        assert (ids == ids[0]).all()
        counts[int(ids[0])] += 1
    q = language_sampling_probabilities(SIZES, alpha)
    for lang in SIZES:
        observed = counts[languages.index(lang)] / 600
        assert observed == pytest.approx(q[lang], abs=4 * np.sqrt(q[lang] * (1 - q[lang]) / 600))
