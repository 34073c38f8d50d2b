"""The 4-bit model file reader on a tiny file written by the test."""

import os

import numpy as np
import pytest

from tests.models.q4_fixtures import (
    TINY_NORMALIZATION,
    TINY_PIECES,
    TINY_SCORES,
    random_tensors,
    tiny_config,
    write_q4_file,
)
from tf_metaling.models.q4_model_file import Q4ModelFile, Q4ModelFileError, dequantize_q4


@pytest.fixture()
def tiny_file(tmp_path):
    config = tiny_config()
    tensors = random_tensors(config)
    path = str(tmp_path / "tiny-q4.bin")
    places = write_q4_file(path, config, tensors)
    return path, config, tensors, places


def test_header_vocabulary_and_normalization(tiny_file):
    path, config, _, _ = tiny_file
    model_file = Q4ModelFile(path)
    for key, value in config.items():
        assert getattr(model_file.config, key) == pytest.approx(value)
    assert model_file.pieces == TINY_PIECES
    np.testing.assert_array_equal(model_file.scores, np.float32(TINY_SCORES))
    assert model_file.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert model_file.normalization == TINY_NORMALIZATION
    assert len(model_file.tensors) == 5 + 16 * config["num_layers"]


def test_dequantized_and_float_tensors_equal_the_written_values(tiny_file):
    path, config, tensors, _ = tiny_file
    model_file = Q4ModelFile(path)
    for name, (values, nibbles, scales) in tensors.items():
        got = model_file.tensor(name)
        assert got.dtype == np.float32 and got.shape == values.shape, name
        np.testing.assert_array_equal(got, values, err_msg=name)
    # One block by hand: byte j holds value j (low nibble) and j + 16 (high nibble).
    _, nibbles, scales = tensors["l0.q.w"]
    expected = [(int(nibbles[0, j]) - 8) * float(np.float32(scales[0])) for j in range(32)]
    np.testing.assert_array_equal(model_file.tensor("l0.q.w")[0, :32], np.float32(expected))
    word = model_file.tensor("emb.word")
    assert word.shape == (config["vocabulary_size"], config["hidden_dim"])


def test_dequantize_q4_on_hand_packed_block():
    scale = np.float16(0.25).tobytes()
    low = np.arange(16, dtype=np.uint8)  # values 0..15 -> -8..7
    high = np.full(16, 15, dtype=np.uint8)  # values 16..31 -> 7
    raw = np.frombuffer(scale + bytes(low | (high << 4)), dtype=np.uint8)
    expected = np.concatenate([np.arange(-8, 8), np.full(16, 7)]).astype(np.float32) * 0.25
    np.testing.assert_array_equal(dequantize_q4(raw, 32), expected)


def test_truncated_file_names_file_and_offset(tiny_file, tmp_path):
    path, _, _, places = tiny_file
    data = open(path, "rb").read()
    # Cut inside the last tensor's data: the directory still parses.
    last = list(places)[-1]
    cut = str(tmp_path / "cut-data.bin")
    with open(cut, "wb") as f:
        f.write(data[: places[last][0] + 3])
    with pytest.raises(Q4ModelFileError, match=f"{cut}: tensor '{last}'.*runs past the end"):
        Q4ModelFile(cut)
    # Cut inside the piece scores.
    cut_header = str(tmp_path / "cut-header.bin")
    with open(cut_header, "wb") as f:
        f.write(data[:100])
    with pytest.raises(Q4ModelFileError, match=f"{cut_header}: truncated at offset \\d+ while"):
        Q4ModelFile(cut_header)


def test_corrupt_file_names_the_tensor(tmp_path):
    config = tiny_config()
    tensors = random_tensors(config)
    bad_tag = str(tmp_path / "bad-tag.bin")
    write_q4_file(bad_tag, config, tensors, dtype_override={"l1.fi.w": 7})
    with pytest.raises(Q4ModelFileError, match="tensor 'l1.fi.w'.*unknown dtype tag 7"):
        Q4ModelFile(bad_tag)
    # A 4-bit tensor declared float32: its byte count no longer fits.
    wrong_tag = str(tmp_path / "wrong-tag.bin")
    write_q4_file(wrong_tag, config, tensors, dtype_override={"l0.k.w": 0})
    with pytest.raises(Q4ModelFileError, match="tensor 'l0.k.w'.*expected 16384 for 4096"):
        Q4ModelFile(wrong_tag)
    # Non-finite values (an fp16 scale of inf) are refused when read.
    places = write_q4_file(str(tmp_path / "ok.bin"), config, tensors)
    data = bytearray(open(tmp_path / "ok.bin", "rb").read())
    data[places["l0.v.w"][0] : places["l0.v.w"][0] + 2] = np.float16(np.inf).tobytes()
    infinite = str(tmp_path / "inf.bin")
    with open(infinite, "wb") as f:
        f.write(bytes(data))
    model_file = Q4ModelFile(infinite)
    with pytest.raises(Q4ModelFileError, match="tensor 'l0.v.w'.*non-finite"):
        model_file.tensor("l0.v.w")
    with pytest.raises(Q4ModelFileError, match="no tensor 'l9.q.w'"):
        model_file.tensor("l9.q.w")
    not_a_model = str(tmp_path / "text.bin")
    with open(not_a_model, "w") as f:
        f.write("hello world")
    with pytest.raises(Q4ModelFileError, match="offset 0: magic b'hell'"):
        Q4ModelFile(not_a_model)
    assert os.path.exists(not_a_model)
