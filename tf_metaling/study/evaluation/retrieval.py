"""X -> pivot retrieval (XTREME's Tatoeba-style), per query sentence.

Each test sentence of language X and of the pivot is embedded
(`embeddings.sentence_embeddings`, each through its own language's LS layers,
centred per language); a query is correct when its translation is the
nearest of all N pivot candidates by cosine similarity (baseline 1/N).
"""

from __future__ import annotations

import numpy as np

from tf_metaling.estimates import ratio_record
from tf_metaling.study.evaluation.embeddings import centered, sentence_embeddings


def retrieval_records(model, tokenizer, corpus, sequence_length: int, pivot: str, max_pairs: int,
                      center_languages: bool = True) -> dict:
    """``{X: record}``: per query, 1 if its translation is the nearest pivot sentence (baseline 1/N)."""
    known = model.language_vocabulary
    if pivot not in known:
        return {}
    records = {}
    for code, pairs in corpus.retrieval_sets(pivot, max_pairs=max_pairs).items():
        if code not in known:
            continue
        source = centered(sentence_embeddings(model, tokenizer, pairs.source_sentences, code, sequence_length),
                          center_languages)
        target = centered(sentence_embeddings(model, tokenizer, pairs.target_sentences, pivot, sequence_length),
                          center_languages)
        source = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
        target = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        hits = (np.argmax(source @ target.T, axis=1) == np.arange(len(pairs))).astype(float)
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=1.0 / len(pairs))
    return records
