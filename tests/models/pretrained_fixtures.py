"""Tiny random keras-hub backbones saved as presets, for the pretrained-encoder tests.

Nothing is downloaded: every backbone, vocabulary and SentencePiece model is
built here. Weights are redrawn with a larger scale than keras-hub's 0.02
initialiser (and layer-norm scales around 1), so a wrong mapping of any weight
changes the outputs visibly.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
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
        "hidden_act": "gelu_new",  # keras-hub's BertBackbone computes the tanh GELU
        "layer_norm_eps": 1e-12,
    }
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
        # keras-hub's BertTokenizer(lowercase=True) keeps accents; Hugging Face's would strip them by default.
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "strip_accents": False}, file)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as file:
        file.write("".join(token + "\n" for token in vocabulary))
    return os.fspath(directory)


# ------------------------------------------------------------------ Hugging Face directories from numpy
HF_SIZES = {"hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 16, "num_hidden_layers": 2}


def hugging_face_config(model_type="bert", **fields) -> dict:
    """A config.json for a tiny BERT or XLM-R (XLM-R: 2 offset rows + 16 positions, one token type)."""
    if model_type == "bert":
        config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(bert_vocabulary()),
                  "max_position_embeddings": 16, "type_vocab_size": 2, "pad_token_id": 0}  # fmt: skip
    else:
        config = {"model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"],
                  "vocab_size": sentencepiece_vocabulary_size(), "max_position_embeddings": 18,
                  "type_vocab_size": 1, "pad_token_id": 1}  # fmt: skip
    config.update(HF_SIZES, hidden_act="gelu", layer_norm_eps=1e-12, position_embedding_type="absolute")
    config.update(fields)
    return config


def sentencepiece_vocabulary_size() -> int:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    processor.LoadFromSerializedProto(sentencepiece_proto())
    return processor.GetPieceSize() + 2  # fairseq ids: <pad> inserted, <mask> appended


def random_hugging_face_tensors(config, seed=0, prefix="", norm=("weight", "bias"), masked_lm=False) -> dict:
    """Random weights under Hugging Face's names ([out, in] Linear weights), scaled so every one matters."""
    rng = np.random.RandomState(seed)
    d, inner = config["hidden_size"], config["intermediate_size"]

    def normal(*shape):
        return rng.normal(scale=0.3, size=shape).astype(np.float32)

    def layer_norm(name):
        return {f"{name}.{norm[0]}": 1.0 + normal(d), f"{name}.{norm[1]}": normal(d)}

    tensors = {
        f"{prefix}embeddings.word_embeddings.weight": normal(config["vocab_size"], d),
        f"{prefix}embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], d),
        f"{prefix}embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], d),
        f"{prefix}embeddings.position_ids": np.arange(config["max_position_embeddings"], dtype=np.int64)[None],
        **layer_norm(f"{prefix}embeddings.LayerNorm"),
    }
    for i in range(config["num_hidden_layers"]):
        layer = f"{prefix}encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[f"{layer}{name}.weight"], tensors[f"{layer}{name}.bias"] = normal(d, d), normal(d)
        tensors[f"{layer}intermediate.dense.weight"], tensors[f"{layer}intermediate.dense.bias"] = normal(inner, d), normal(inner)
        tensors[f"{layer}output.dense.weight"], tensors[f"{layer}output.dense.bias"] = normal(d, inner), normal(d)
        tensors.update(layer_norm(f"{layer}attention.output.LayerNorm"))
        tensors.update(layer_norm(f"{layer}output.LayerNorm"))
    if masked_lm:
        head = "cls.predictions" if config["model_type"] == "bert" else "lm_head"
        transform = f"{head}.transform" if config["model_type"] == "bert" else head
        tensors[f"{transform}.dense.weight"], tensors[f"{transform}.dense.bias"] = normal(d, d), normal(d)
        tensors.update(layer_norm(f"{transform}.LayerNorm" if config["model_type"] == "bert" else f"{head}.layer_norm"))
        tensors[f"{head}.bias"] = normal(config["vocab_size"])
    return tensors


def write_hugging_face_directory(directory, config, tensors, tokenizer_config=None, shards=1, dtype=None) -> str:
    """config.json, the weights (model.safetensors, or `shards` files + index) and the tokenizer files.

    `tokenizer_config` None writes no tokenizer_config.json; `dtype` converts
    the float tensors (e.g. float16) before writing.
    """
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    tensors = {name: np.ascontiguousarray(value if dtype is None or value.dtype.kind != "f" else value.astype(dtype))
               for name, value in tensors.items()}  # fmt: skip
    if shards == 1:
        save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    else:
        names = sorted(tensors)
        weight_map = {}
        for shard in range(shards):
            file_name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
            part = names[shard::shards]
            save_file({name: tensors[name] for name in part}, os.path.join(directory, file_name))
            weight_map.update({name: file_name for name in part})
        with open(os.path.join(directory, "model.safetensors.index.json"), "w", encoding="utf-8") as file:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, file)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    if tokenizer_config is not None:
        with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
            json.dump(tokenizer_config, file)
    if config["model_type"] == "xlm-roberta" or "XLMRoberta" in (tokenizer_config or {}).get("tokenizer_class", ""):
        with open(os.path.join(directory, "sentencepiece.bpe.model"), "wb") as file:
            file.write(sentencepiece_proto())
    else:
        with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as file:
            file.write("".join(token + "\n" for token in bert_vocabulary()))
    return os.fspath(directory)
