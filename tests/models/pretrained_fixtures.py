"""Tiny random keras-hub backbones saved as presets, for the pretrained-encoder tests.

Nothing is downloaded: every backbone, vocabulary and SentencePiece model is
built here. Weights are redrawn with a larger scale than keras-hub's 0.02
initialiser (and layer-norm scales around 1), so a wrong mapping of any weight
changes the outputs visibly.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

LANGUAGES = ["en", "de", "tr", "ru", "zh"]
MULTILINGUAL_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund!",
    "Hızlı kahverengi tilki tembel köpeğin üzerinden atlar.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "Ünïcödé ÀCCENTS, émoji 🙂 and   spaces",
    "",
]
# One per language of LANGUAGES: some fill 12 positions, some are padded.
SHORT_TEXTS = ["The quick fox.", "Der Hund!", "tilki köpeğin", "Быстрая коричневая лиса прыгает", "狐狸"]
BERT_WORDS = [
    "the", "quick", "fox", "dog", "der", "schnelle", "über", "den", "hund", "tilki", "köpeğin",
    "лиса", "собаку", "狐", "狸", "狗", "emoji", "and", "spaces", "accents",
]
SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 16}


def bert_vocabulary() -> list:
    """A BERT-style vocabulary: [PAD] first, [UNK]/[CLS]/[SEP]/[MASK] after unused slots, as mBERT."""
    letters = sorted(set("".join(BERT_WORDS + [t.lower() for t in MULTILINGUAL_TEXTS])) - {" "})
    vocabulary = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary += BERT_WORDS + letters + ["##" + c for c in letters]
    return list(dict.fromkeys(vocabulary))


def sentencepiece_proto(vocab_size=96) -> bytes:
    """A tiny unigram SentencePiece model with XLM-R's first pieces (<unk>, <s>, </s>)."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(MULTILINGUAL_TEXTS[:5] * 30),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def randomize(model, seed=0, scale=0.3):
    rng = np.random.RandomState(seed)
    for weight in model.weights:
        value = rng.normal(scale=scale, size=weight.shape)
        if weight.path.endswith("gamma"):
            value += 1.0
        weight.assign(value.astype(weight.dtype))


def write_bert_preset(directory, masked_lm=False, seed=0) -> str:
    import keras_hub

    vocabulary = bert_vocabulary()
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), **SIZES)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    if masked_lm:
        task = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
        randomize(task, seed)
        task.save_to_preset(directory)
    else:
        randomize(backbone, seed)
        backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return os.fspath(directory)


def write_xlm_roberta_preset(directory, seed=1) -> str:
    import keras_hub

    tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=sentencepiece_proto())
    backbone = keras_hub.models.XLMRobertaBackbone(vocabulary_size=tokenizer.vocabulary_size(), **SIZES)
    randomize(backbone, seed)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return os.fspath(directory)


def write_hugging_face_bert(directory, backbone, vocabulary) -> str:
    """A Hugging Face-format BERT directory holding `backbone`'s weights (config.json, safetensors, vocab)."""
    from safetensors.numpy import save_file

    d = backbone.hidden_dim
    tensors = {
        "embeddings.word_embeddings.weight": backbone.get_layer("token_embedding").embeddings,
        "embeddings.position_embeddings.weight": backbone.get_layer("position_embedding").position_embeddings,
        "embeddings.token_type_embeddings.weight": backbone.get_layer("segment_embedding").embeddings,
        "embeddings.LayerNorm.weight": backbone.get_layer("embeddings_layer_norm").gamma,
        "embeddings.LayerNorm.bias": backbone.get_layer("embeddings_layer_norm").beta,
        "pooler.dense.weight": np.transpose(backbone.get_layer("pooled_dense").kernel.numpy()),
        "pooler.dense.bias": backbone.get_layer("pooled_dense").bias,
    }
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        attention = block._self_attention_layer
        prefix = f"encoder.layer.{i}."
        for name, dense in (("query", attention.query_dense), ("key", attention.key_dense),
                            ("value", attention.value_dense)):
            tensors[f"{prefix}attention.self.{name}.weight"] = dense.kernel.numpy().reshape(d, d).T
            tensors[f"{prefix}attention.self.{name}.bias"] = dense.bias.numpy().reshape(d)
        tensors[f"{prefix}attention.output.dense.weight"] = attention.output_dense.kernel.numpy().reshape(d, d).T
        tensors[f"{prefix}attention.output.dense.bias"] = attention.output_dense.bias
        tensors[f"{prefix}attention.output.LayerNorm.weight"] = block._self_attention_layer_norm.gamma
        tensors[f"{prefix}attention.output.LayerNorm.bias"] = block._self_attention_layer_norm.beta
        tensors[f"{prefix}intermediate.dense.weight"] = block._feedforward_intermediate_dense.kernel.numpy().T
        tensors[f"{prefix}intermediate.dense.bias"] = block._feedforward_intermediate_dense.bias
        tensors[f"{prefix}output.dense.weight"] = block._feedforward_output_dense.kernel.numpy().T
        tensors[f"{prefix}output.dense.bias"] = block._feedforward_output_dense.bias
        tensors[f"{prefix}output.LayerNorm.weight"] = block._feedforward_layer_norm.gamma
        tensors[f"{prefix}output.LayerNorm.bias"] = block._feedforward_layer_norm.beta
    os.makedirs(directory, exist_ok=True)
    save_file({k: np.ascontiguousarray(np.asarray(v), dtype=np.float32) for k, v in tensors.items()},
              os.path.join(directory, "model.safetensors"))
    config = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": d,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim,
        "max_position_embeddings": backbone.max_sequence_length,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
    }
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True}, file)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as file:
        file.write("".join(token + "\n" for token in vocabulary))
    return os.fspath(directory)
