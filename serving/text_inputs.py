"""Raw text -> model inputs, in the TensorFlow graph of an exported signature.

The tokenizer's own `encode` pads every batch to one fixed length; a server pays
for every padded position, so exported text signatures pack ``[CLS] pieces
[SEP]`` and pad only to the longest text of the batch (never beyond the model's
positions). Fill-mask requests write ``[MASK]`` in the text; the pretokenizer
would lower-case and split that marker like any punctuation, so the text is cut
at each literal ``[MASK]`` first, the pieces between are tokenized, and the mask
id is put back between them.

Special ids come from the tokenizer (a converted checkpoint keeps its own, e.g.
XLM-R's ``<s>=0, <pad>=1, </s>=2``), and the mask marker is the tokenizer's own
mask token (``[MASK]``, or ``<mask>`` for XLM-R); without a tokenizer the
project's fixed ids apply.

Only core TensorFlow ops are added here; the text ops are the tokenizer's.
"""

from __future__ import annotations

import tensorflow as tf

from tf_metaling.tokenizers import CLS_ID, MASK_ID, MASK_TOKEN, PAD_ID, SEP_ID


def special_ids(tokenizer=None) -> dict:
    """``{"cls", "sep", "pad", "mask"}`` ids of `tokenizer` (the project's fixed ids without one)."""
    if tokenizer is None:
        return {"cls": CLS_ID, "sep": SEP_ID, "pad": PAD_ID, "mask": MASK_ID}
    return {"cls": tokenizer.cls_id, "sep": tokenizer.sep_id, "pad": tokenizer.pad_id, "mask": tokenizer.mask_id}


def pack_pieces(pieces: tf.RaggedTensor, max_length: int, tokenizer=None) -> dict:
    """[B, (pieces)] -> ``token_ids``/``padding_mask`` int32 [B, T], T = longest row <= max_length."""
    ids_of = special_ids(tokenizer)
    body = tf.cast(pieces[:, : max_length - 2], tf.int32)
    rows = body.nrows()
    cls = tf.fill(tf.stack([rows, 1]), tf.constant(ids_of["cls"], tf.int32))
    sep = tf.fill(tf.stack([rows, 1]), tf.constant(ids_of["sep"], tf.int32))
    ids = tf.concat([cls, body, sep], axis=1)
    token_ids = ids.to_tensor(default_value=ids_of["pad"])
    padding_mask = tf.sequence_mask(ids.row_lengths(), tf.shape(token_ids)[1], dtype=tf.int32)
    return {"token_ids": token_ids, "padding_mask": padding_mask}


def encode_text(tokenizer, text: tf.Tensor, max_length: int, transform=None) -> dict:
    """[B] strings -> packed model inputs (see `pack_pieces`).

    `transform` (optional) maps the word pieces ``[B, (words), (pieces)]``
    before packing: synthetic languages' id shift and word order.
    """
    if transform is None:
        return pack_pieces(tokenizer.tokenize(text), max_length, tokenizer)
    return pack_pieces(transform(tokenizer.tokenize_words(text)).merge_dims(1, 2), max_length, tokenizer)


def encode_text_with_masks(tokenizer, text: tf.Tensor, max_length: int, transform=None) -> dict:
    """Like `encode_text`, but every literal mask token (``[MASK]``) in the text becomes the mask id."""
    mask_token = tokenizer.vocab[tokenizer.mask_id] if hasattr(tokenizer, "mask_id") else MASK_TOKEN
    mask_id = special_ids(tokenizer)["mask"]
    segments = tf.strings.split(text, sep=mask_token)  # [B, (segments)]
    # A mask id follows every segment except the last one of its text.
    position = tf.ragged.range(segments.row_lengths()).flat_values
    row_length = tf.gather(segments.row_lengths(), segments.value_rowids())
    followed_by_mask = tf.cast(position < row_length - 1, tf.int64)
    if transform is None:
        pieces = tf.cast(tokenizer.tokenize(segments.flat_values), tf.int32)  # [N, (pieces)]
        masks = tf.cast(tf.ragged.range(followed_by_mask) * 0 + mask_id, tf.int32)
        pieces = tf.concat([pieces, masks], axis=1)
        merged = segments.with_flat_values(pieces).merge_dims(1, 2)
        return pack_pieces(merged, max_length, tokenizer)
    words = tf.cast(tokenizer.tokenize_words(segments.flat_values), tf.int32)  # [N, (words), (pieces)]
    mask_count = tf.reduce_sum(followed_by_mask)
    mask_words = tf.RaggedTensor.from_row_lengths(
        tf.RaggedTensor.from_row_lengths(tf.fill([mask_count], tf.constant(mask_id, tf.int32)),
                                         tf.ones([mask_count], tf.int64)),
        followed_by_mask,
    )
    words = tf.concat([words, mask_words], axis=1)
    word_pieces = segments.with_flat_values(words).merge_dims(1, 2)  # [B, (words), (pieces)]
    return pack_pieces(transform(word_pieces).merge_dims(1, 2), max_length, tokenizer)


def mask_positions(token_ids: tf.Tensor, mask_id: int = MASK_ID) -> tf.Tensor:
    """Positions of the mask id in each row, int32 [B, P] padded with -1 (P = most masks in a row)."""
    is_mask = tf.equal(token_ids, mask_id)
    positions = tf.broadcast_to(tf.range(tf.shape(token_ids)[1], dtype=tf.int32), tf.shape(token_ids))
    return tf.ragged.boolean_mask(positions, is_mask).to_tensor(default_value=-1)
