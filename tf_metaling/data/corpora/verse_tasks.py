"""The built-in corpus's classification tasks: the same labels in every language.

Labels are facts about the verse, not about its wording: the revelation
period of the surah (Meccan / Medinan) for the Quran languages, the testament
(Old / New) for the Bible languages. Each task is trained on the pivot
(English) and evaluated zero-shot on the others (`BuiltinCorpus.classification_tasks`).
"""

from __future__ import annotations

from collections.abc import Callable

from tf_metaling.data.corpora.bible import TESTAMENTS, testament
from tf_metaling.data.corpora.quran import REVELATION_PERIODS, revelation_period
from tf_metaling.data.sentence_classification import ClassificationExample
from tf_metaling.data.tasks import ClassificationTask


def _verse_task(corpus, name, prefix, label_of: Callable, label_names, pivot) -> ClassificationTask:
    def examples(code, split):
        return [
            ClassificationExample(text=t, label=label_of(i), language=code, source=i)
            for i, t in corpus.examples(code, split)
            if i.startswith(prefix)
        ]

    if pivot not in corpus.languages:
        raise ValueError(f"Training language {pivot!r} is not in the corpus.")
    valid, test, train_by_language = {}, {}, {}
    for code in corpus.languages:
        held_out = examples(code, "test")
        if held_out:
            test[code] = held_out
            valid[code] = examples(code, "valid")
            train_by_language[code] = examples(code, "train")
    train = train_by_language.get(pivot, [])
    if not train or len(test) < 2:
        raise ValueError(f"Task {name!r} needs {pivot!r} training text and >= 2 test languages.")
    return ClassificationTask(name, tuple(label_names), pivot, train, valid, test, train_by_language)


def revelation_period_task(corpus, pivot: str = "en") -> ClassificationTask:
    """Meccan vs Medinan surah of a Quran verse (labels ``meccan``, ``medinan``)."""
    return _verse_task(
        corpus, "revelation_period", "quran:", revelation_period, REVELATION_PERIODS, pivot
    )


def testament_task(corpus, pivot: str = "en") -> ClassificationTask:
    """Old vs New Testament of a Bible verse (labels ``old``, ``new``)."""
    return _verse_task(corpus, "testament", "bible:", testament, TESTAMENTS, pivot)


def builtin_classification_tasks(corpus, pivot: str = "en") -> dict[str, ClassificationTask]:
    """Every built-in classification task the corpus's languages support."""
    tasks = {}
    for build in (revelation_period_task, testament_task):
        try:
            task = build(corpus, pivot)
        except ValueError:
            continue
        tasks[task.name] = task
    return tasks
