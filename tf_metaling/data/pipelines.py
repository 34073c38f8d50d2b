"""Per-language tf.data streams, language sampling and MLM batches.

Each language has its own stream of text (a list of sentences, text files,
text TFRecords, a `tf.data.Dataset` or a generator function). Streams are
shuffled, repeated and tokenised in the graph, then combined:

- ``batching="mixed"``: every example's language is drawn from
  q_l ∝ n_l^alpha (`language_sampling_probabilities`), so a batch mixes
  languages;
- ``batching="one_language"``: every batch holds one language, drawn from
  q_l per batch, as in the paper's reference code; ``language_ids`` is still
  [B] (all equal).

Examples are single sentences (``packing="sentence"``: ``[CLS] s [SEP]``,
truncated) or XLM-style streams (``packing="stream"``: consecutive sentences
of one language, each followed by ``[SEP]``, cut into sequences that fill
``sequence_length``). Dynamic masking (`masking.mask_batch`) is keyed by a
per-batch seed derived from ``config.seed``, so a pipeline is deterministic
for a given seed, whatever its parallelism.

For `tf.distribute`, `mlm_dataset_fn` returns the function that
``strategy.distribute_datasets_from_function`` calls with an `InputContext`:
each input pipeline reads its own shard of every language, draws from its own
seed and batches ``input_context.get_per_replica_batch_size(batch_size)``.

For evaluation, `language_batches` gives a fixed list of masked batches per
language, and `meta_batch_dataset` / `meta_batch` give mixed batches holding
the same number of examples of every language (the meta step's held-out
batch).

Batches are dicts: ``token_ids`` int32 [B, T], ``padding_mask`` int32 [B, T]
(1 = real token), ``language_ids`` int32 [B], ``mask_positions`` int32 [B, P],
``mask_ids`` int32 [B, P], ``mask_weights`` float32 [B, P].
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import weakref
from collections.abc import Callable, Mapping

import tensorflow as tf

from tf_metaling.data import masking
from tf_metaling.data.text_reader import TextLineReader, count_text_lines, text_line_dataset
from tf_metaling.data.tfrecord_io import is_tfrecord_path, text_tfrecord_dataset
from tf_metaling.language_sampling import DEFAULT_ALPHA, language_sampling_probabilities
from tf_metaling.languages import as_vocabulary
from tf_metaling.tokenizers import CLS_ID, PAD_ID, SEP_ID

BATCHING_MODES = ("mixed", "one_language")
PACKING_MODES = ("sentence", "stream")
MLM_KEYS = (
    "token_ids",
    "padding_mask",
    "language_ids",
    "mask_positions",
    "mask_ids",
    "mask_weights",
)


@dataclasses.dataclass(frozen=True)
class MlmPipelineConfig:
    """Settings of the masked-LM input pipeline.

    Args:
        batch_size: global batch size (divided among replicas under
            `tf.distribute`).
        sequence_length: T, including [CLS] and [SEP].
        max_predictions: P, predictions per sequence.
        mask_rate, mask_token_rate, random_token_rate: 15% / 80% / 10%.
        alpha: language sampling exponent (q_l ∝ n_l^alpha).
        batching: ``"mixed"`` or ``"one_language"``.
        packing: ``"stream"`` (fill sequences with consecutive sentences) or
            ``"sentence"`` (one sentence per sequence).
        shuffle_buffer: sentences held by each language's shuffle buffer.
        tokenize_batch_size: sentences tokenised per call (throughput knob).
        seed: seeds shuffling, language sampling and masking.
    """

    batch_size: int = 32
    sequence_length: int = 128
    max_predictions: int = 20
    mask_rate: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1
    alpha: float = DEFAULT_ALPHA
    batching: str = "mixed"
    packing: str = "stream"
    shuffle_buffer: int = 10_000
    tokenize_batch_size: int = 256
    seed: int = 0

    def __post_init__(self):
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"batching={self.batching!r}: expected one of {BATCHING_MODES}.")
        if self.packing not in PACKING_MODES:
            raise ValueError(f"packing={self.packing!r}: expected one of {PACKING_MODES}.")
        for name in ("batch_size", "shuffle_buffer", "tokenize_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1.")
        if self.sequence_length < 3:
            raise ValueError(f"sequence_length={self.sequence_length}: expected >= 3.")

    def masking_config(self, vocab_size: int, tokenizer=None) -> masking.MaskingConfig:
        """The masking of `vocab_size` ids with `tokenizer`'s special ids (default: the project's WordPiece ids)."""
        ids = masking.masking_ids(tokenizer) if tokenizer is not None else {}
        return masking.MaskingConfig(
            **ids,
            vocab_size=vocab_size,
            max_predictions=self.max_predictions,
            mask_rate=self.mask_rate,
            mask_token_rate=self.mask_token_rate,
            random_token_rate=self.random_token_rate,
        )


def derive_seed(seed: int, *keys) -> int:
    """A 31-bit seed from `seed` and any labels (stable across runs and platforms)."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(keys)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------- text sources
def _paths(source) -> list[str] | None:
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    if (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(p, os.PathLike) for p in source)
    ):
        return [os.fspath(p) for p in source]
    return None


def text_dataset(source, language: str, on_error: str = "raise") -> tf.data.Dataset:
    """A dataset of sentences (tf.string scalars) from one language's source.

    `source` may be: a list/tuple of sentences (str); a path (str or
    PathLike) or a list of PathLike to text files (``.gz`` ok) or to text
    TFRecords (``.tfrecord``); a `tf.data.Dataset` of strings; or a function
    returning an iterator of sentences. Text files are read with
    `text_line_dataset` (strict UTF-8, errors name file:line); with
    ``on_error="skip"`` with `TextLineReader`, which skips undecodable lines
    and logs their count after each pass (slower: Python per line).
    """
    if isinstance(source, tf.data.Dataset):
        return source
    paths = _paths(source)
    if paths is not None:
        if all(is_tfrecord_path(p) for p in paths):
            return text_tfrecord_dataset(paths).map(lambda example: example["text"])
        if on_error == "raise":
            return text_line_dataset(paths, language)
        reader = TextLineReader(paths, language, on_error=on_error)
        return tf.data.Dataset.from_generator(
            lambda: iter(reader), output_signature=tf.TensorSpec([], tf.string)
        )
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError(f"Language {language!r} has an empty list of sentences.")
        bad = [i for i, s in enumerate(source) if not isinstance(s, str)]
        if bad:
            raise TypeError(
                f"Language {language!r}: sentence {bad[0]} is a "
                f"{type(source[bad[0]]).__name__}, expected str (or give PathLike paths)."
            )
        return tf.data.Dataset.from_tensor_slices(tf.constant(list(source), tf.string))
    if callable(source):
        return tf.data.Dataset.from_generator(source, output_signature=tf.TensorSpec([], tf.string))
    raise TypeError(f"Unsupported text source for language {language!r}: {type(source).__name__}.")


def source_size(source, language: str = "") -> int:
    """Number of sentences of a source (lists, text files, text TFRecords)."""
    paths = _paths(source)
    if paths is not None:
        if all(is_tfrecord_path(p) for p in paths):
            return int(sum(1 for _ in tf.data.TFRecordDataset(paths)))
        return count_text_lines(paths)
    if isinstance(source, (list, tuple)):
        return len(source)
    raise ValueError(
        f"Cannot count the sentences of the {type(source).__name__} source of language "
        f"{language!r}; pass sizes={{language: n}}."
    )


def sampling_probabilities(sources: Mapping, alpha: float, sizes=None) -> dict[str, float]:
    """q_l ∝ n_l^alpha over the languages of `sources`."""
    sizes = dict(sizes or {})
    for language, source in sources.items():
        if language not in sizes:
            sizes[language] = source_size(source, language)
    missing = [lang for lang in sources if lang not in sizes]
    if missing:
        raise ValueError(f"No size for language(s) {missing}.")
    return language_sampling_probabilities({lang: sizes[lang] for lang in sources}, alpha)


# ---------------------------------------------------------------- per language
# Tracing the tokenizer and the masking ops takes seconds (thousands of graph
# ops); traced once per process as tf.functions, every dataset that uses them
# only adds a call.
_TRACED_ENCODE = weakref.WeakKeyDictionary()


def _traced_encode(tokenizer, sequence_length: int, packing: str, transform):
    """``texts [N], language_id -> examples``, one tf.function per setting."""
    cache = _TRACED_ENCODE.setdefault(tokenizer, {})
    key = (sequence_length, packing, transform)
    if key not in cache:

        def encode(texts, language_id):
            if transform is None and not hasattr(tokenizer, "tokenize_words"):
                pieces = tokenizer.tokenize(texts)  # a pretrained tokenizer (SentencePiece): [N, (P)]
            else:
                word_pieces = tokenizer.tokenize_words(texts)  # [N, (W), (P)]
                if transform is not None:
                    word_pieces = transform(word_pieces)
                pieces = word_pieces.merge_dims(1, 2)
            if packing == "sentence":
                inputs = tokenizer.pack(pieces, sequence_length)
            else:
                inputs = _pack_stream(pieces, sequence_length, tokenizer)
            rows = tf.shape(inputs["token_ids"])[0]
            inputs["language_ids"] = tf.fill([rows], language_id)
            return inputs

        cache[key] = tf.function(
            encode,
            input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)],
            autograph=False,
        )
    return cache[key]


@functools.cache
def _traced_mask(masking_config: masking.MaskingConfig):
    def mask(token_ids, padding_mask, seed):
        batch = {"token_ids": token_ids, "padding_mask": padding_mask}
        return masking.mask_batch(batch, masking_config, seed)

    return tf.function(
        mask,
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([2], tf.int64),
        ],
        autograph=False,
    )


def _encode_fn(tokenizer, config: MlmPipelineConfig, language_id: int, transform):
    encode = _traced_encode(tokenizer, config.sequence_length, config.packing, transform)
    language = tf.constant(language_id, tf.int32)

    @tf.autograph.experimental.do_not_convert
    def encode_language(texts):
        return encode(texts, language)

    return encode_language


def _pack_stream(pieces: tf.RaggedTensor, sequence_length: int, tokenizer=None) -> dict:
    """Concatenates sentences (each + [SEP]) and cuts ``[CLS] + T-1`` chunks (the tokenizer's ids)."""
    cls_id, sep_id, pad_id = (
        (CLS_ID, SEP_ID, PAD_ID) if tokenizer is None else (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    )
    rows = pieces.nrows()
    sep = tf.fill(tf.stack([rows, 1]), tf.constant(sep_id, pieces.dtype))
    stream = tf.concat([pieces, sep], axis=1).flat_values
    chunk = sequence_length - 1
    total = tf.size(stream, out_type=tf.int64)
    full = total // chunk
    rest = total - full * chunk
    lengths = tf.concat(
        [
            tf.fill([full], tf.constant(chunk, tf.int64)),
            tf.reshape(rest, [1])[: tf.cast(rest > 0, tf.int32)],
        ],
        axis=0,
    )
    chunks = tf.RaggedTensor.from_row_lengths(stream, lengths)
    cls = tf.fill(tf.stack([chunks.nrows(), 1]), tf.constant(cls_id, pieces.dtype))
    ids = tf.cast(tf.concat([cls, chunks], axis=1), tf.int32)
    return {
        "token_ids": ids.to_tensor(pad_id, shape=[None, sequence_length]),
        "padding_mask": tf.sequence_mask(ids.row_lengths(), sequence_length, dtype=tf.int32),
    }


def language_examples(
    source,
    language: str,
    language_id: int,
    tokenizer,
    config: MlmPipelineConfig,
    *,
    shuffle: bool = True,
    repeat: bool = True,
    shard: tuple[int, int] = (1, 0),
    seed: int = 0,
    transform: Callable | None = None,
    on_error: str = "raise",
) -> tf.data.Dataset:
    """One language's stream of unmasked examples (``token_ids``, ``padding_mask``
    [T], ``language_ids`` scalar)."""
    texts = text_dataset(source, language, on_error=on_error)
    num_shards, index = shard
    if num_shards > 1:
        texts = texts.shard(num_shards, index)
    if repeat and _encode_once(source, config):
        # One example per sentence: encode every sentence once and keep the ids, then shuffle
        # and repeat the examples. Shuffling n examples or n sentences with the same seed gives
        # the same order, so the stream is the one below, without tokenizing each epoch again.
        examples = texts.batch(config.tokenize_batch_size).map(
            _encode_fn(tokenizer, config, language_id, transform),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).unbatch().cache()
        if shuffle:
            examples = examples.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return examples.repeat()
    if shuffle:
        texts = texts.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        texts = texts.repeat()
    batches = texts.batch(config.tokenize_batch_size)
    examples = batches.map(
        _encode_fn(tokenizer, config, language_id, transform),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return examples.unbatch()


# Encoded sentences kept in memory per language stream, at most (ids and padding mask, int32).
ENCODE_ONCE_MAX_BYTES = 256 << 20


def _encode_once(source, config: MlmPipelineConfig) -> bool:
    """Whether a repeated stream encodes its sentences once: one example per sentence
    (``packing="sentence"``), sentences held in memory (a list), and their ids within
    `ENCODE_ONCE_MAX_BYTES`."""
    if config.packing != "sentence" or not isinstance(source, (list, tuple)) or _paths(source) is not None:
        return False
    return len(source) * config.sequence_length * 8 <= ENCODE_ONCE_MAX_BYTES


def _add_masking(dataset, masking_config, seed: int) -> tf.data.Dataset:
    steps = tf.data.Dataset.counter()
    mask = _traced_mask(masking_config)

    @tf.autograph.experimental.do_not_convert
    def add_mask(batch, step):
        batch_seed = tf.stack([tf.constant(seed, tf.int64), step])
        masked = mask(batch["token_ids"], batch["padding_mask"], batch_seed)
        out = dict(batch)
        out.update(masked)
        sequence_length = batch["token_ids"].shape[1]
        out["token_ids"] = tf.ensure_shape(out["token_ids"], [None, sequence_length])
        return out

    return tf.data.Dataset.zip((dataset, steps)).map(
        add_mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # Sharding is done per language above; automatic sharding would re-shard.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def _prepare(sources, languages, config, sizes):
    if not sources:
        raise ValueError("No language sources given.")
    languages = as_vocabulary(languages)
    languages.check(list(sources), where="pipeline sources")
    if not isinstance(config, MlmPipelineConfig):
        raise TypeError(f"config must be an MlmPipelineConfig, got {type(config).__name__}.")
    return languages


# ---------------------------------------------------------------- training stream
def mlm_dataset(
    sources: Mapping,
    tokenizer,
    languages,
    config: MlmPipelineConfig = MlmPipelineConfig(),
    *,
    input_context: tf.distribute.InputContext | None = None,
    sizes: Mapping[str, int] | None = None,
    repeat: bool = True,
    shuffle: bool = True,
    language_transforms: Mapping[str, Callable] | None = None,
    vocab_size: int | None = None,
    on_error: str = "raise",
    paired: bool = False,
    skip_batches: int = 0,
    split_global_batch: bool = False,
) -> tf.data.Dataset:
    """Masked-LM batches from per-language sources, sampled by q_l ∝ n_l^alpha.

    Under `tf.distribute` with ``batching="one_language"``, every replica of a
    step must hold the same language (the meta step updates that language's
    parameters on all replicas). Each input pipeline then draws languages with
    the same seed, reads its own shard of every language, batches its whole
    share of the global batch and splits it (``rebatch``) into per-replica
    pieces, which its replicas take in turn.

    Args:
        sources: ``{language code: source}`` (see `text_dataset`).
        tokenizer: a `Tokenizer`.
        languages: the `LanguageVocabulary` (or codes) giving language ids.
        config: `MlmPipelineConfig`.
        input_context: from `distribute_datasets_from_function`; selects the
            shard, the per-replica batch size and the pipeline's seed.
        sizes: ``{language: n_l}`` for sampling; counted from the sources when
            omitted (lists, files).
        repeat, shuffle: False for a single ordered pass (evaluation).
        language_transforms: ``{language: fn(word_pieces) -> word_pieces}``
            applied after tokenisation (synthetic languages).
        vocab_size: id range for random replacement tokens (defaults to the
            tokenizer's; synthetic languages use a larger one).
        paired: (one-language batching) each element is ``{"train": batch,
            "lookahead": batch}``, two batches of the same language: the meta
            step's ordinary and look-ahead batches.
        skip_batches: start after this many batches (of this pipeline), for a
            resumed run: the stream, masks included, continues exactly where
            the interrupted run stopped. The skipped batches are recomputed.
        split_global_batch: (under `tf.distribute`) every input pipeline
            computes the same global batches and keeps its share of the rows,
            so training sees the same global batches whatever the number of
            workers (reproducible; costs redundant input work per worker).
            Otherwise each pipeline reads its own shard (scalable).
    """
    languages = _prepare(sources, languages, config, sizes)
    if paired and config.batching != "one_language":
        raise ValueError("paired batches need batching='one_language'.")
    q = sampling_probabilities(sources, config.alpha, sizes)
    batch_size = config.batch_size
    shard = (1, 0)
    pipeline = 0
    replica_batch = None
    pipelines_count, pipeline_id = 1, 0
    if input_context is not None:
        pipelines_count = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        replica_batch = input_context.get_per_replica_batch_size(config.batch_size)
        if split_global_batch:
            # Every pipeline computes the whole global batch and keeps its rows.
            batch_size = config.batch_size
        elif config.batching == "one_language":
            # The pipeline's whole share, split into per-replica pieces below.
            if config.batch_size % input_context.num_replicas_in_sync:
                raise ValueError(
                    f"batch_size {config.batch_size} is not divisible by the "
                    f"{input_context.num_replicas_in_sync} replicas."
                )
            shard, pipeline = (pipelines_count, pipeline_id), pipeline_id
            batch_size = config.batch_size // pipelines_count
        else:
            shard, pipeline = (pipelines_count, pipeline_id), pipeline_id
            batch_size = replica_batch
    transforms = dict(language_transforms or {})
    codes = list(sources)
    streams = [
        language_examples(
            sources[code],
            code,
            languages.index(code),
            tokenizer,
            config,
            shuffle=shuffle,
            repeat=repeat,
            shard=shard,
            seed=derive_seed(config.seed, "shuffle", code, pipeline),
            transform=transforms.get(code),
            on_error=on_error,
        )
        for code in codes
    ]
    weights = [q[code] for code in codes]
    if config.batching == "mixed":
        sample_seed = derive_seed(config.seed, "languages", pipeline)
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=weights, seed=sample_seed, stop_on_empty_dataset=False
        )
        dataset = dataset.batch(batch_size, drop_remainder=repeat)
    else:
        # The same language sequence in every pipeline (see the docstring).
        sample_seed = derive_seed(config.seed, "languages")
        draw = batch_size * (2 if paired else 1)
        batched = [s.batch(draw, drop_remainder=repeat) for s in streams]
        dataset = tf.data.Dataset.sample_from_datasets(
            batched, weights=weights, seed=sample_seed, stop_on_empty_dataset=False
        )
    masking_config = config.masking_config(vocab_size or tokenizer.vocab_size, tokenizer)
    dataset = _add_masking(dataset, masking_config, derive_seed(config.seed, "mask", pipeline))
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    if paired:
        dataset = dataset.map(
            lambda batch: {
                "train": {k: v[:batch_size] for k, v in batch.items()},
                "lookahead": {k: v[batch_size:] for k, v in batch.items()},
            }
        )
    if split_global_batch and pipelines_count > 1:
        dataset = dataset.map(
            lambda element: tf.nest.map_structure(lambda v: v[pipeline_id::pipelines_count], element)
        )
        batch_size = config.batch_size // pipelines_count
    if replica_batch is not None and replica_batch != batch_size:
        dataset = dataset.rebatch(replica_batch)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def mlm_dataset_fn(
    sources: Mapping,
    tokenizer,
    languages,
    config: MlmPipelineConfig = MlmPipelineConfig(),
    **kwargs,
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """The function to give `strategy.distribute_datasets_from_function`."""

    def dataset_fn(input_context: tf.distribute.InputContext | None = None):
        return mlm_dataset(
            sources, tokenizer, languages, config, input_context=input_context, **kwargs
        )

    return dataset_fn


# ---------------------------------------------------------------- evaluation
def language_batches(
    sources: Mapping,
    tokenizer,
    languages,
    config: MlmPipelineConfig = MlmPipelineConfig(),
    *,
    num_batches: int | None = None,
    language_transforms: Mapping[str, Callable] | None = None,
    vocab_size: int | None = None,
) -> dict[str, list[dict]]:
    """A fixed list of masked batches per language, in file order.

    Every call returns the same batches (masking seeded by ``config.seed`` and
    the language), so per-language perplexity is comparable across runs. The
    last batch of a language may be smaller than ``config.batch_size``;
    `num_batches` caps the count.
    """
    languages = _prepare(sources, languages, config, None)
    transforms = dict(language_transforms or {})
    masking_config = config.masking_config(vocab_size or tokenizer.vocab_size, tokenizer)
    result = {}
    for code, source in sources.items():
        examples = language_examples(
            source,
            code,
            languages.index(code),
            tokenizer,
            config,
            shuffle=False,
            repeat=False,
            transform=transforms.get(code),
        )
        dataset = _add_masking(
            examples.batch(config.batch_size),
            masking_config,
            derive_seed(config.seed, "eval-mask", code),
        )
        if num_batches is not None:
            dataset = dataset.take(num_batches)
        result[code] = list(dataset.with_options(_options()))
        if not result[code]:
            raise ValueError(f"Language {code!r} produced no evaluation batch (empty source?).")
    return result


def meta_batch_dataset(
    sources: Mapping,
    tokenizer,
    languages,
    config: MlmPipelineConfig = MlmPipelineConfig(),
    *,
    examples_per_language: int = 4,
    language_transforms: Mapping[str, Callable] | None = None,
    vocab_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """Endless mixed batches holding `examples_per_language` of EVERY language.

    Batch size is ``len(sources) * examples_per_language``; rows are grouped
    by language in the order of `sources`. Meant for held-out (valid) text:
    the meta step evaluates every language's loss on it.

    With an `input_context` (from ``distribute_datasets_from_function``) every
    pipeline builds the same stream and keeps every n-th row, then splits its
    rows among its replicas, so the global meta batch does not depend on the
    number of workers or replicas. `skip_batches` resumes the stream (see
    `mlm_dataset`).
    """
    languages = _prepare(sources, languages, config, None)
    transforms = dict(language_transforms or {})
    per_language = []
    for code, source in sources.items():
        stream = language_examples(
            source,
            code,
            languages.index(code),
            tokenizer,
            config,
            shuffle=True,
            repeat=True,
            seed=derive_seed(config.seed, "meta-shuffle", code),
            transform=transforms.get(code),
        )
        per_language.append(stream.batch(examples_per_language, drop_remainder=True))

    @tf.autograph.experimental.do_not_convert
    def concatenate(*batches):
        return {key: tf.concat([b[key] for b in batches], axis=0) for key in batches[0]}

    dataset = tf.data.Dataset.zip(tuple(per_language)).map(concatenate)
    masking_config = config.masking_config(vocab_size or tokenizer.vocab_size, tokenizer)
    dataset = _add_masking(dataset, masking_config, derive_seed(config.seed, "meta-mask"))
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    if input_context is not None:
        pipelines_count = input_context.num_input_pipelines
        pipeline = input_context.input_pipeline_id
        rows = -(-len(sources) * examples_per_language // pipelines_count)
        if pipelines_count > 1:
            dataset = dataset.map(lambda b: {k: v[pipeline::pipelines_count] for k, v in b.items()})
        replicas_here = input_context.num_replicas_in_sync // pipelines_count
        if replicas_here > 1:
            dataset = dataset.rebatch(-(-rows // replicas_here))
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def meta_batch(
    sources: Mapping, tokenizer, languages, config=MlmPipelineConfig(), **kwargs
) -> dict:
    """One batch of `meta_batch_dataset` (fixed for a given seed)."""
    return next(iter(meta_batch_dataset(sources, tokenizer, languages, config, **kwargs)))
