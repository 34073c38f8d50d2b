"""The evaluation tasks a `Corpus` hands out (no labels from a hub), and their metrics.

- **Held-out MLM text**: each language's valid/test sentences, for
  per-language perplexity and masked-token accuracy (`mlm_eval_sources`, fed
  to `pipelines.language_batches`).
- **Cross-lingual retrieval** (XTREME's Tatoeba-style, `RetrievalSet`): for
  every language X, aligned sentence pairs X <-> the pivot from the test
  split (`retrieval_sets` of any corpus with alignment ids); a model embeds
  both sides and `retrieval_accuracy_at_1` counts how often a sentence's
  nearest neighbour (cosine similarity) among all candidates is its
  translation.
- **Sentence classification with the same labels in every language**
  (`ClassificationTask`), trained on the pivot and evaluated zero-shot on the
  others; the built-in corpus's verse tasks are in `corpora.verse_tasks`.
- **Token tagging** (`TaggingTask`): POS or NER, in each language that has data.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import Optional

import numpy as np

from tf_metaling.errors import DataFormatError


def mlm_eval_sources(corpus, split: str = "test") -> dict[str, list[str]]:
    """``{code: sentences}`` of a held-out split, for per-language MLM evaluation."""
    if split not in ("valid", "test"):
        raise ValueError(f"split={split!r}: held-out MLM text is 'valid' or 'test'.")
    return corpus.text_sources(split)


@dataclasses.dataclass
class RetrievalSet:
    """Aligned sentences: ``source_sentences[i]`` translates ``target_sentences[i]``."""

    source_language: str
    target_language: str
    source_sentences: list
    target_sentences: list
    alignment_ids: list

    def __len__(self):
        return len(self.alignment_ids)


def retrieval_sets(
    corpus, pivot: str = "en", split: str = "test", max_pairs: int | None = 1000
) -> dict[str, RetrievalSet]:
    """``{X: RetrievalSet(X -> pivot)}`` for every other language of the corpus.

    Pairs are verses present in both languages; with `max_pairs`, a fixed
    hash-chosen subset (Tatoeba uses 1000 pairs per language).
    """
    if pivot not in corpus.languages:
        raise ValueError(f"Pivot {pivot!r} is not in the corpus languages {corpus.languages}.")
    pivot_text = dict(corpus.examples(pivot, split))
    sets = {}
    for code in corpus.languages:
        if code == pivot:
            continue
        pairs = [(i, t) for i, t in corpus.examples(code, split) if i in pivot_text]
        if max_pairs is not None and len(pairs) > max_pairs:
            chosen = sorted(
                pairs, key=lambda p: hashlib.sha256(f"retrieval:{p[0]}".encode()).hexdigest()
            )
            keep = {i for i, _ in chosen[:max_pairs]}
            pairs = [p for p in pairs if p[0] in keep]
        if len(pairs) < 2:
            raise ValueError(
                f"Language {code!r} shares fewer than 2 {split} verses with {pivot!r}."
            )
        sets[code] = RetrievalSet(
            source_language=code,
            target_language=pivot,
            source_sentences=[t for _, t in pairs],
            target_sentences=[pivot_text[i] for i, _ in pairs],
            alignment_ids=[i for i, _ in pairs],
        )
    return sets


def retrieval_accuracy_at_1(source_embeddings, target_embeddings) -> float:
    """Share of rows i whose most cosine-similar target row is row i.

    Both arguments are [N, D] (numpy or tensors); row i of each side are
    translations. Ties go to the lowest index, as `argmax` does.
    """
    source = np.asarray(source_embeddings, dtype=np.float64)
    target = np.asarray(target_embeddings, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape != target.shape:
        raise ValueError(
            f"Expected two [N, D] embedding matrices of the same shape, got "
            f"{source.shape} and {target.shape}."
        )
    if source.shape[0] == 0:
        raise ValueError("No embeddings to compare.")
    source = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    target = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
    nearest = np.argmax(source @ target.T, axis=1)
    return float(np.mean(nearest == np.arange(source.shape[0])))


@dataclasses.dataclass
class ClassificationTask:
    """Train on `train_language`, evaluate on every language of `test` (zero-shot transfer).

    `train_by_language` holds every language's own training examples, for the
    in-language protocol (a probe per language, trained and tested in it).
    """

    name: str
    label_names: tuple
    train_language: str
    train: list  # [ClassificationExample]
    valid: dict  # code -> [ClassificationExample]
    test: dict  # code -> [ClassificationExample]
    train_by_language: dict = dataclasses.field(default_factory=dict)  # code -> [ClassificationExample]

    def label_counts(self, examples) -> dict:
        return dict(collections.Counter(e.label for e in examples))

    def majority_baseline(self, language: str) -> float:
        """Accuracy of always predicting the most frequent TRAINING label."""
        majority = collections.Counter(e.label for e in self.train).most_common(1)[0][0]
        test = self.test[language]
        return sum(e.label == majority for e in test) / len(test)


def balanced_test(task: ClassificationTask, per_class: Optional[int] = None) -> ClassificationTask:
    """The task with every test language cut to equal classes (majority baseline = 1 / classes).

    A deterministic, hash-ordered subsample of each larger class is kept, so
    accuracy is balanced accuracy and a probe that predicts one class scores
    exactly the majority baseline. `per_class` caps every class's examples.
    """

    def balanced(examples):
        by_label = collections.defaultdict(list)
        for example in examples:
            by_label[example.label].append(example)
        if len(by_label) < 2:
            return list(examples)
        size = min(len(v) for v in by_label.values())
        if per_class:
            size = min(size, int(per_class))
        keep = set()
        for rows in by_label.values():
            rows = sorted(rows, key=lambda e: hashlib.sha256(f"balance:{e.source}:{e.text}".encode()).hexdigest())
            keep.update(id(e) for e in rows[:size])
        return [e for e in examples if id(e) in keep]

    return dataclasses.replace(task, test={code: balanced(rows) for code, rows in task.test.items()})


@dataclasses.dataclass
class TaggingTask:
    """Token tagging trained and tested in each language that has data (in-language).

    Attributes:
        name: e.g. ``"pos"`` or ``"ner"``.
        metric: ``"accuracy"`` (per word) or ``"span_f1"`` (seqeval, IOB spans).
        label_names: the tag set (from the training data).
        train / test: ``{code: [TaggedSentence]}``.
        sources: ``{code: description of the files}`` for tables and errors.
    """

    name: str
    metric: str
    label_names: tuple
    train: dict
    test: dict
    sources: dict = dataclasses.field(default_factory=dict)

    def majority_tag(self, language: str) -> str:
        return collections.Counter(t for s in self.train[language] for t in s.tags).most_common(1)[0][0]

    def baseline(self, language: str) -> float:
        """Majority tag accuracy on the test words, or span F1 of predicting no entity (0)."""
        if self.metric == "span_f1":
            return 0.0
        majority = self.majority_tag(language)
        tags = [t for s in self.test[language] for t in s.tags]
        return sum(t == majority for t in tags) / max(len(tags), 1)


def check_tag_sets(train, test, train_source: str, language: str) -> tuple:
    """The training tag set; raises DataFormatError at the first test tag not seen in training."""
    known = sorted({t for s in train for t in s.tags})
    for sentence in test:
        for offset, (word, tag) in enumerate(zip(sentence.words, sentence.tags)):
            if tag not in known:
                path, _, line = (sentence.source or "").rpartition(":")
                raise DataFormatError(
                    f"tag {tag!r} (word {word!r}) never occurs in the training data ({train_source}); "
                    "train and test must share one tag set",
                    path=path or None, line=int(line) + offset if line.isdigit() else None, language=language,
                    expected=", ".join(known),
                )
    return tuple(known)
