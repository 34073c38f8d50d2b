"""Masked-LM inputs of an experiment: corpus -> tokenizer -> distributed tf.data streams.

From a `DataConfig` this builds, once per model_dir:

- the text sources per language from the configured `Corpus` (built-in,
  the user's directory or files, synthetic languages), with the
  high/low-resource groups;
- the tokenizer (loaded from ``model_dir/vocab.txt`` when resuming, else the
  configured vocabulary file, else learned language-balanced from the training
  text and saved into model_dir so that a resumed run reads the same ids);
- the functions `tf.distribute` needs: one-language (or mixed) training
  batches, meta batches holding every language, and fixed evaluation batches.

Under `tf.distribute` with one-language batches, every replica of a step sees
the same language k (see `tf_metaling.data.pipelines.mlm_dataset`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.configs import DataConfig
from tf_metaling.data import pipelines
from tf_metaling.data.corpora.corpus import load_corpus
from tf_metaling.data.corpora.file_list_corpus import parse_language_files  # noqa: F401 (re-exported)
from tf_metaling.data.text_reader import TextLineReader
from tf_metaling.languages import LanguageVocabulary
from tf_metaling.tokenizers import WordPieceTokenizer


@dataclasses.dataclass
class MlmInputs:
    """Everything the masked-LM trainer reads. Build it with `build_mlm_inputs`."""

    config: DataConfig
    languages: LanguageVocabulary
    tokenizer: WordPieceTokenizer
    vocab_size: int
    train_sources: Mapping
    valid_sources: Mapping
    groups: dict
    transforms: Optional[dict] = None
    seed: int = 0

    def pipeline_config(self, batch_size: int, **changes) -> pipelines.MlmPipelineConfig:
        data = self.config
        return pipelines.MlmPipelineConfig(
            batch_size=batch_size,
            sequence_length=data.sequence_length,
            max_predictions=data.max_predictions,
            alpha=data.sampling_alpha,
            batching=data.batching,
            packing=data.packing,
            shuffle_buffer=data.shuffle_buffer,
            seed=self.seed,
            **changes,
        )

    def sampling_probabilities(self) -> dict:
        """``{language: probability}`` of the training batches (q_l ∝ n_l^alpha)."""
        return pipelines.sampling_probabilities(self.train_sources, self.config.sampling_alpha)

    def _common(self) -> dict:
        return {"language_transforms": self.transforms, "vocab_size": self.vocab_size}

    def train_dataset_fn(self, paired: bool = False, skip_batches: int = 0) -> Callable:
        """For `distribute_datasets_from_function`: training batches of the global batch size.

        With `paired`, each element is ``{"train": batch, "lookahead": batch}``:
        two batches of the same language (the meta step's ordinary and
        look-ahead batches). `skip_batches` resumes the stream after that many
        steps (distributed iterators cannot be checkpointed; the streams are
        deterministic, so skipping reproduces the position exactly).
        """

        def dataset_fn(input_context: tf.distribute.InputContext | None = None):
            return pipelines.mlm_dataset(
                self.train_sources,
                self.tokenizer,
                self.languages,
                self.pipeline_config(self.config.batch_size),
                input_context=input_context,
                paired=paired,
                skip_batches=skip_batches,
                split_global_batch=self.config.split_global_batch,
                **self._common(),
            )

        return dataset_fn

    def meta_dataset_fn(self, skip_batches: int = 0) -> Callable:
        """For `distribute_datasets_from_function`: held-out batches holding every language."""
        per_language = self.config.meta_examples_per_language

        def dataset_fn(input_context: tf.distribute.InputContext | None = None):
            return pipelines.meta_batch_dataset(
                self.valid_sources,
                self.tokenizer,
                self.languages,
                self.pipeline_config(per_language * len(self.valid_sources)),
                examples_per_language=per_language,
                input_context=input_context,
                skip_batches=skip_batches,
                **self._common(),
            )

        return dataset_fn

    def eval_batches(self) -> dict:
        """``{language: [batch, ...]}``: fixed masked batches of held-out text."""
        return pipelines.language_batches(
            self.valid_sources,
            self.tokenizer,
            self.languages,
            self.pipeline_config(self.config.eval_batch_size),
            num_batches=self.config.eval_batches_per_language,
            **self._common(),
        )

    def accuracy_baselines(self, eval_batches: dict) -> dict:
        """``{language: the masked-token accuracy of always predicting its most frequent masked token}``.

        The most frequent masked token comes from a sample of the language's
        training text (its first 2000 sentences, masked as in training); the
        baseline is its share of `eval_batches`' masked tokens. A model whose
        accuracy is not above it predicts token frequencies (the unigram plateau).
        """
        sample = {code: source[:2000] if isinstance(source, (list, tuple)) else source
                  for code, source in self.train_sources.items()}
        training = pipelines.language_batches(
            sample, self.tokenizer, self.languages, self.pipeline_config(self.config.eval_batch_size),
            num_batches=self.config.eval_batches_per_language, **self._common(),
        )
        baselines = {}
        for code, batches in eval_batches.items():
            if not batches:
                continue
            counts = np.bincount(np.concatenate(
                [_masked_targets(batch) for batch in training.get(code, [])] or [np.zeros(0, np.int64)]))
            targets = np.concatenate([_masked_targets(batch) for batch in batches])
            most_frequent = int(np.argmax(counts)) if counts.size else -1
            baselines[code] = float((targets == most_frequent).sum() / max(targets.size, 1))
        return baselines


def _masked_targets(batch) -> np.ndarray:
    """The target ids of a masked batch's masked positions (weight > 0), flat."""
    return np.asarray(batch["mask_ids"]).ravel()[np.asarray(batch["mask_weights"]).ravel() > 0].astype(np.int64)


def _sentences(source, code):
    """An iterable of the sentences of a source (a list, or text files)."""
    if isinstance(source, (list, tuple)):
        return source
    return TextLineReader(source, code)


def _load_or_learn_tokenizer(config: DataConfig, train_sources, model_dir, seed) -> WordPieceTokenizer:
    saved = checkpoints.vocab_path(model_dir) if model_dir else None
    if saved:
        return WordPieceTokenizer.load(saved)
    if config.vocab_file:
        tokenizer = WordPieceTokenizer.load(config.vocab_file)
    else:
        tokenizer = WordPieceTokenizer.train(
            {code: _sentences(source, code) for code, source in train_sources.items()},
            vocab_size=config.vocab_size,
            alpha=config.sampling_alpha,
            seed=seed,
            max_sentences_per_language=20000,
        )
    if model_dir:
        tokenizer.save(os.path.join(model_dir, tokenizer.file_name))
    return tokenizer


def build_mlm_inputs(config: DataConfig, model_dir: Optional[str] = None, seed: int = 0, corpus=None,
                     log=None, tokenizer=None) -> MlmInputs:
    """Reads the configured corpus (or `corpus`, already loaded) and prepares the tokenizer and streams.

    `tokenizer`: a pretrained encoder's own tokenizer (any `Tokenizer`), used
    as it is; by default the corpus's fixed tokenizer or a learned WordPiece.
    """
    languages = LanguageVocabulary(list(config.languages))
    corpus = corpus if corpus is not None else load_corpus(config, seed, log=log)
    missing = [code for code in config.languages if code not in corpus.languages]
    if missing:
        raise ValueError(f"config field data.languages: {missing} not in the corpus ({corpus.describe()}).")
    train_sources = {code: source for code, source in corpus.text_sources("train").items() if code in languages}
    valid_sources = {code: source for code, source in corpus.text_sources("valid").items() if code in languages}
    groups = {group: [c for c in codes if c in languages] for group, codes in corpus.groups.items()}
    if tokenizer is not None:
        return MlmInputs(config, languages, tokenizer, tokenizer.vocab_size, train_sources, valid_sources, groups,
                         None, seed)
    tokenizer = corpus.fixed_tokenizer()
    if tokenizer is not None:
        if model_dir:
            tokenizer.save(os.path.join(model_dir, tokenizer.file_name))
    if model_dir and corpus.synthetic is not None:
        # The model's ids are the corpus's shifted ranges: an export repeats the transforms from this file.
        corpus.synthetic.save(model_dir)
    else:
        tokenizer = _load_or_learn_tokenizer(config, train_sources, model_dir, seed)
    transforms = corpus.language_transforms
    if transforms is not None:
        transforms = {code: fn for code, fn in transforms.items() if code in languages}
    return MlmInputs(config, languages, tokenizer, corpus.vocab_size(tokenizer), train_sources, valid_sources,
                     groups, transforms, seed)
