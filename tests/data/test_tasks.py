"""Built-in evaluation tasks: retrieval sets and accuracy@1, classification labels."""

import numpy as np
import pytest

from tf_metaling.data.corpora import bible, load_builtin_corpus
from tf_metaling.data.corpora.quran import MEDINAN_SURAHS, SURAH_VERSE_COUNTS, revelation_period
from tf_metaling.data.corpora.verse_tasks import builtin_classification_tasks
from tf_metaling.data.tasks import mlm_eval_sources, retrieval_accuracy_at_1, retrieval_sets


@pytest.fixture(scope="module")
def corpus(cache, packages):
    pins, downloader = packages
    return load_builtin_corpus(cache, pins=pins, downloader=downloader)


def test_retrieval_accuracy_at_1():
    target = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert retrieval_accuracy_at_1(target * 3, target) == 1.0
    # Row 2 is closest to target 0 (cosine 1 vs 0.95), rows 0 and 1 are right.
    source = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]])
    assert retrieval_accuracy_at_1(source, target) == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    random_source = rng.normal(size=(200, 16))
    assert retrieval_accuracy_at_1(random_source, rng.normal(size=(200, 16))) < 0.05
    with pytest.raises(ValueError, match="same shape"):
        retrieval_accuracy_at_1(np.zeros((3, 2)), np.zeros((2, 2)))


def test_retrieval_sets_pair_translations(corpus):
    sets = retrieval_sets(corpus, max_pairs=100)
    assert set(sets) == set(corpus.languages) - {"en"}
    english = dict(corpus.examples("en", "test"))
    for code, pairs in sets.items():
        assert 2 <= len(pairs) <= 100
        own = dict(corpus.examples(code, "test"))
        for i, source, target in zip(
            pairs.alignment_ids, pairs.source_sentences, pairs.target_sentences
        ):
            assert own[i] == source and english[i] == target
    assert all(i.startswith("bible:") for i in sets["ny"].alignment_ids)
    assert sets["ar"].alignment_ids == retrieval_sets(corpus, max_pairs=100)["ar"].alignment_ids


def test_labels_are_verse_facts():
    assert (
        revelation_period("quran:1:1") == "meccan" and revelation_period("quran:2:255") == "medinan"
    )
    assert len(MEDINAN_SURAHS) == 28 and len(SURAH_VERSE_COUNTS) == 114
    assert sum(SURAH_VERSE_COUNTS) == 6236
    assert bible.testament("bible:1:1:1") == "old" and bible.testament("bible:40:1:1") == "new"
    with pytest.raises(ValueError):
        bible.testament("quran:1:1:1")


def test_classification_tasks_train_on_english_and_test_everywhere(corpus):
    tasks = builtin_classification_tasks(corpus)
    period = tasks["revelation_period"]
    assert period.label_names == ("meccan", "medinan")
    assert {e.language for e in period.train} == {"en"}
    assert all(e.source.startswith("quran:") for e in period.train)
    assert set(period.test) == set(corpus.languages) - {"ny"}
    for examples in period.test.values():
        assert all(e.label == revelation_period(e.source) for e in examples)
    counts = period.label_counts(period.train)
    assert 0.15 < counts["medinan"] / sum(counts.values()) < 0.4
    assert 0.5 < period.majority_baseline("ar") < 0.9
    bible = tasks["testament"]
    assert set(bible.test) == {"en", "ny"}
    assert {e.label for e in bible.train} == {"old", "new"}


def test_mlm_eval_sources(corpus):
    sources = mlm_eval_sources(corpus, "valid")
    assert set(sources) == set(corpus.languages)
    assert sources["ur"] == corpus.sentences("ur", "valid")
    with pytest.raises(ValueError):
        mlm_eval_sources(corpus, "train")
