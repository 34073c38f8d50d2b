"""MLM pipelines: batch contract, determinism, packing, sources, distribution."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.data.pipelines import (
    MLM_KEYS,
    MlmPipelineConfig,
    language_batches,
    meta_batch,
    mlm_dataset,
    mlm_dataset_fn,
    sampling_probabilities,
)
from tf_metaling.data.synthetic import toy_sentences
from tf_metaling.data.tfrecord_io import write_text_tfrecord
from tf_metaling.languages import LanguageVocabulary, UnknownLanguageError
from tf_metaling.tokenizers import CLS_ID, PAD_ID, SEP_ID, WordPieceTokenizer

LANGUAGES = LanguageVocabulary(["en", "fr", "sw"])


@pytest.fixture(scope="module")
def setup():
    sentences = toy_sentences(700, seed=9)
    # Three "languages" with distinct markers so a batch row reveals its source.
    sources = {
        "en": sentences[:400],
        "fr": ["le " + s for s in sentences[400:600]],
        "sw": ["wa " + s for s in sentences[600:]],
    }
    return sources, WordPieceTokenizer.train(sources, vocab_size=150)


def _take(dataset, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


def test_batches_follow_the_contract(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(batch_size=8, sequence_length=24, max_predictions=5, seed=3)
    first, second = _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 2)
    assert set(first) == set(MLM_KEYS)
    shapes = {k: v.shape for k, v in first.items()}
    assert shapes == {
        "token_ids": (8, 24), "padding_mask": (8, 24), "language_ids": (8,),
        "mask_positions": (8, 5), "mask_ids": (8, 5), "mask_weights": (8, 5),
    }  # fmt: skip
    dtypes = {k: v.dtype for k, v in first.items()}
    assert dtypes["mask_weights"] == np.float32
    assert all(dtypes[k] == np.int32 for k in MLM_KEYS if k != "mask_weights")
    for batch in (first, second):
        assert (batch["token_ids"][:, 0] == CLS_ID).all()
        assert (batch["token_ids"][batch["padding_mask"] == 0] == PAD_ID).all()
        # Stream packing fills sequences with several sentences joined by [SEP].
        assert batch["padding_mask"].sum() > 0.9 * batch["padding_mask"].size
        assert (batch["token_ids"] == SEP_ID).sum(axis=1).max() >= 2
        rows = np.arange(8)[:, None]
        assert (
            batch["padding_mask"][rows, batch["mask_positions"]][batch["mask_weights"] > 0] == 1
        ).all()


def test_pipeline_is_deterministic_under_a_seed(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(
        batch_size=6, sequence_length=16, max_predictions=3, seed=11, packing="sentence"
    )
    run_a = _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 3)
    run_b = _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 3)
    other = _take(
        mlm_dataset(
            sources, tokenizer, LANGUAGES, MlmPipelineConfig(**{**config.__dict__, "seed": 12})
        ),
        3,
    )
    for a, b in zip(run_a, run_b):
        for key in MLM_KEYS:
            assert np.array_equal(a[key], b[key]), key
    assert any(not np.array_equal(a["token_ids"], o["token_ids"]) for a, o in zip(run_a, other))


@pytest.mark.parametrize("batching", ["mixed", "one_language"])
def test_sentences_encoded_once_give_the_same_stream_as_encoding_every_epoch(setup, monkeypatch, batching):
    from tf_metaling.data import pipelines

    sources, tokenizer = setup
    # Small shuffle buffer and 120 batches of 16: several epochs of every language (400/200/100
    # sentences), each reshuffled.
    config = MlmPipelineConfig(batch_size=16, sequence_length=16, max_predictions=3, seed=5,
                               packing="sentence", batching=batching, shuffle_buffer=64)
    assert pipelines._encode_once(sources["en"], config)
    once = _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 120)
    monkeypatch.setattr(pipelines, "ENCODE_ONCE_MAX_BYTES", 0)
    assert not pipelines._encode_once(sources["en"], config)
    every_epoch = _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 120)
    for a, b in zip(once, every_epoch):
        for key in MLM_KEYS:
            assert np.array_equal(a[key], b[key]), key
    # Streams (several sentences per example) and files are encoded as they are read.
    assert not pipelines._encode_once(sources["en"], MlmPipelineConfig(packing="stream"))
    assert not pipelines._encode_once("/data/en.txt", config)


def test_one_language_batches_hold_one_language(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(
        batch_size=4, sequence_length=16, batching="one_language", packing="sentence"
    )
    seen = set()
    for batch in _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 30):
        ids = batch["language_ids"]
        assert ids.shape == (4,) and (ids == ids[0]).all()
        seen.add(int(ids[0]))
        marker = {1: "le", 2: "wa"}.get(int(ids[0]))
        if marker:
            text = tokenizer.detokenize(batch["token_ids"]).numpy()
            assert all(
                t.split()[0] in (marker.encode(), b"[MASK]") or len(t.split()) > 0 for t in text
            )
    assert seen == {0, 1, 2}


def test_language_ids_match_text_in_mixed_batches(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(batch_size=16, sequence_length=20, max_predictions=1,
                               mask_rate=0.01, packing="sentence")  # fmt: skip
    for batch in _take(mlm_dataset(sources, tokenizer, LANGUAGES, config), 4):
        first_words = tokenizer.detokenize(batch["token_ids"]).numpy()
        for language_id, text in zip(batch["language_ids"], first_words):
            word = text.split()[0]
            if word == b"[MASK]" or b"##" in word:
                continue
            expected = {1: b"le", 2: b"wa"}.get(int(language_id))
            if expected:
                assert word == expected
            else:
                assert word not in (b"le", b"wa")


def test_language_batches_are_fixed_and_cover_every_sentence(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(batch_size=64, sequence_length=20, packing="sentence", seed=5)
    first = language_batches(sources, tokenizer, LANGUAGES, config)
    again = language_batches(sources, tokenizer, LANGUAGES, config)
    for code in sources:
        rows = sum(len(b["language_ids"]) for b in first[code])
        assert rows == len(sources[code])
        assert all((b["language_ids"].numpy() == LANGUAGES.index(code)).all() for b in first[code])
        for a, b in zip(first[code], again[code]):
            assert np.array_equal(a["token_ids"].numpy(), b["token_ids"].numpy())


def test_meta_batch_holds_every_language(setup):
    sources, tokenizer = setup
    config = MlmPipelineConfig(sequence_length=16, max_predictions=2, packing="sentence")
    batch = meta_batch(sources, tokenizer, LANGUAGES, config, examples_per_language=3)
    assert batch["language_ids"].numpy().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert batch["token_ids"].shape == (9, 16) and batch["mask_ids"].shape == (9, 2)


def test_file_and_tfrecord_sources(tmp_path, setup):
    sources, tokenizer = setup
    en = tmp_path / "en.txt.gz"
    with gzip.open(en, "wt", encoding="utf-8") as f:
        f.write("\n".join(sources["en"][:50]) + "\n\n")
    fr = tmp_path / "fr.tfrecord"
    write_text_tfrecord(fr, sources["fr"][:20], "fr")
    files = {"en": str(en), "fr": str(fr)}
    assert sampling_probabilities(files, alpha=1.0) == pytest.approx({"en": 50 / 70, "fr": 20 / 70})
    config = MlmPipelineConfig(batch_size=70, sequence_length=20, packing="sentence")
    batches = language_batches(files, tokenizer, LANGUAGES, config)
    assert (
        len(batches["en"][0]["language_ids"]) == 50 and len(batches["fr"][0]["language_ids"]) == 20
    )
    text = tokenizer.detokenize(batches["fr"][0]["token_ids"][:1]).numpy()[0].decode()
    assert text.startswith("le") or "[MASK]" in text


def test_invalid_utf8_in_a_text_source_names_file_and_line(tmp_path, setup):
    _, tokenizer = setup
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sees a dog .\nthe dog \xff sees\n")
    config = MlmPipelineConfig(batch_size=2, sequence_length=16, packing="sentence")
    with pytest.raises(Exception, match="bad.txt:2: invalid UTF-8"):
        language_batches({"en": str(bad)}, tokenizer, LANGUAGES, config)


def test_unknown_language_in_sources_raises(setup):
    sources, tokenizer = setup
    with pytest.raises(UnknownLanguageError, match="xx"):
        mlm_dataset({"xx": sources["en"]}, tokenizer, LANGUAGES)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="batching"):
        MlmPipelineConfig(batching="random")
    with pytest.raises(ValueError, match="packing"):
        MlmPipelineConfig(packing="docs")


def test_distribute_datasets_from_function_shards_per_replica(setup):
    sources, tokenizer = setup
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (set up in tests/conftest.py)")
    strategy = tf.distribute.MirroredStrategy(devices)
    config = MlmPipelineConfig(
        batch_size=8, sequence_length=16, max_predictions=3, packing="sentence"
    )
    contexts = []

    def dataset_fn(context):
        contexts.append(context)
        return mlm_dataset_fn(sources, tokenizer, LANGUAGES, config)(context)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    batch = next(iter(distributed))
    per_replica = strategy.experimental_local_results(batch["token_ids"])
    assert [t.shape for t in per_replica] == [(4, 16), (4, 16)]
    assert contexts[0].get_per_replica_batch_size(8) == 4

    # With two input pipelines each reads its own half of every language.
    halves = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ordered = MlmPipelineConfig(batch_size=400, sequence_length=24, packing="sentence", mask_rate=0.01,
                                    max_predictions=1)  # fmt: skip
        data = mlm_dataset(
            {"en": sources["en"]}, tokenizer, LANGUAGES, ordered, input_context=context,
            repeat=False, shuffle=False,
        )  # fmt: skip
        halves.append(next(iter(data))["token_ids"].numpy())
    assert halves[0].shape[0] == halves[1].shape[0] == 200
    assert not np.array_equal(halves[0], halves[1])
