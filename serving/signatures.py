"""The exported module: a `MultilingualModel` behind language-aware serving signatures.

Every signature takes a ``language`` string per example, looked up in the graph
with the exported `LanguageVocabulary` (core ops only), so one batch may mix
languages and an unknown code follows the exported policy: an
InvalidArgument error naming the code, or a configured fallback language.

Signatures (what exists depends on the model's heads and on the tokenizer):

===========================  =============================================  ==========================
name                         inputs                                         outputs
===========================  =============================================  ==========================
``serving_default``          token_ids, padding_mask int32 [B,T],           sequence_output, embedding
                             language string [B]
``serve_text``               text, language string [B]                      token_ids, padding_mask,
                                                                            sequence_output, embedding
``embed``                    the request inputs (*)                         embedding
``fill_mask``                the request inputs (*), ``[MASK]`` marks       mask_positions, top_token_ids,
                             the positions to fill                          top_probabilities, top_tokens
``tag``                      the request inputs (*)                         tag_ids, tags, tag_probabilities,
                                                                            tokens
``sentence_classification``  the request inputs (*)                         class_ids, class_names,
                                                                            probabilities
``classify``                 inputs: serialized tf.Example [B] with the     classes, scores
                             request inputs as features (Classify API)
===========================  =============================================  ==========================

(*) text + language when the export has a tokenizer, otherwise token_ids +
padding_mask + language.

A model trained on synthetic languages (`tf_metaling.data.synthetic`) reads
ids that each language shifted into its own range, some with the word order
reversed. Its text signatures take the base text and apply each example's
language transform in the graph (word reversal, then the id shift), exactly
as training did; ``fill_mask`` answers only with ids of the example's
language and spells them with the base vocabulary. Token-id signatures take
ids already in the model's (shifted) space. ``serving_default`` needs no custom op, so it loads in
any stock TF Serving; text signatures use only the tokenizer's tensorflow-text
ops (see `serving.op_check`).

Keras 3 models keep their weights in Keras variables whose TensorFlow variables
a plain `tf.Module` does not reach the way the session-based loader (TF Serving,
``saved_model_cli run``) needs: the module therefore tracks the variables'
values itself (`model_variables`).
"""

from __future__ import annotations

import tensorflow as tf

from serving import text_inputs
from tf_metaling.languages import LanguageVocabulary, as_vocabulary
from tf_metaling.models.multilingual_model import (
    EMBEDDING,
    MASKED_LM_LOGITS,
    SENTENCE_LOGITS,
    SEQUENCE_OUTPUT,
    TOKEN_LOGITS,
)
from tf_metaling.tokenizers import NUM_SPECIAL_TOKENS

SERVING_DEFAULT = "serving_default"
SERVE_TEXT = "serve_text"
EMBED = "embed"
FILL_MASK = "fill_mask"
TAG = "tag"
SENTENCE_CLASSIFICATION = "sentence_classification"
CLASSIFY = "classify"

PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"

_IDS_SPEC = {
    "token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids"),
    "padding_mask": tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
    "language": tf.TensorSpec([None], tf.string, name="language"),
}
_TEXT_SPEC = {
    "text": tf.TensorSpec([None], tf.string, name="text"),
    "language": tf.TensorSpec([None], tf.string, name="language"),
}
_EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name="inputs")


class _Untracked:
    """Holds the Keras model and the shared model functions out of the module's object graph.

    Only the variables are saved as objects; the functions reach the SavedModel
    through the signatures that call them.
    """

    def __init__(self, model):
        self.model = model


class ServingModule(tf.Module):
    """The `tf.Module` that `serving.export` saves.

    Args:
        model: a `MultilingualModel`.
        tokenizer: the model's `Tokenizer`, or None (token-id signatures only).
        languages: the exported `LanguageVocabulary` (its unknown-language
            policy is the one served); default the model's. Its codes must be
            the model's codes in the same order.
        top_k: number of candidates per masked position in ``fill_mask``.
        synthetic_languages: the `SyntheticLanguages` the model was trained
            on (every model language among them), or None for real languages.
    """

    def __init__(self, model, tokenizer=None, languages: LanguageVocabulary | None = None, top_k: int = 5,
                 synthetic_languages=None):
        super().__init__(name="tf_metaling_serving")
        languages = as_vocabulary(languages) if languages is not None else model.language_vocabulary
        if tuple(languages.codes) != tuple(model.language_vocabulary.codes):
            raise ValueError(
                f"Exported languages {list(languages.codes)} must be the model's languages "
                f"{list(model.language_vocabulary.codes)} in the same order (index i of every "
                "language-specific weight belongs to code i)."
            )
        # A converted checkpoint may have more embedding rows than its tokenizer has ids
        # (padded vocabularies); more ids than rows cannot work.
        if synthetic_languages is not None:
            self._check_synthetic(model, tokenizer, synthetic_languages, languages)
        elif tokenizer is not None and tokenizer.vocab_size > model.encoder.vocabulary_size:
            raise ValueError(
                f"Tokenizer vocabulary size {tokenizer.vocab_size} exceeds the model's "
                f"{model.encoder.vocabulary_size}. A model trained on synthetic languages needs their "
                "definitions (synthetic_languages=; serving.export reads model_dir/synthetic_languages.json)."
            )
        if int(top_k) < 1:
            raise ValueError(f"top_k={top_k}: expected an int >= 1.")
        self.languages = languages
        # Special tokens are never an answer to "which word goes here".
        if tokenizer is None:
            self._special_token_ids = tuple(range(NUM_SPECIAL_TOKENS))
        else:
            self._special_token_ids = tuple(
                sorted({tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id})
            )
        self._mask_id = text_inputs.special_ids(tokenizer)["mask"]
        # Rows beyond the tokenizer's ids (padding of a converted vocabulary) are never answers either.
        self._answer_ids = tokenizer.vocab_size if tokenizer is not None else model.encoder.vocabulary_size
        answers = self._answer_ids - len(self._special_token_ids)
        self.synthetic_languages = synthetic_languages
        if synthetic_languages is not None:
            # Synthetic languages' shifted ids lie beyond the base tokenizer's: each language
            # answers within its own range (below).
            self._answer_ids = model.encoder.vocabulary_size
            answers = synthetic_languages.span
            ranges = [synthetic_languages.id_range(code) for code in languages.codes]
            self._language_id_low = tf.constant([low for low, _ in ranges], tf.int32)
            self._language_id_high = tf.constant([high for _, high in ranges], tf.int32)
        self.top_k = min(int(top_k), answers)
        self.max_length = model.encoder.max_sequence_length
        self.vocabulary_size = model.encoder.vocabulary_size
        self.text_mode = tokenizer is not None
        self.tokenizer = tokenizer
        self.model_variables = [variable.value for variable in model.variables]
        self._holder = _Untracked(model)
        outputs = model.output_names_available
        # Every signature calls these two functions, so the model is traced twice
        # per export instead of once per signature (and the SavedModel holds one
        # copy of the encoder graph). Outputs a signature does not use are pruned
        # when the call is inlined at run time.
        id_specs = [tf.TensorSpec([None, None], tf.int32)] * 2 + [tf.TensorSpec([None], tf.int32)]
        self._holder.encode = tf.function(
            lambda token_ids, padding_mask, language_ids: self._holder.model(
                {"token_ids": token_ids, "padding_mask": padding_mask, "language_ids": language_ids},
                training=False,
                outputs=[name for name in outputs if name != MASKED_LM_LOGITS],
            ),
            input_signature=id_specs,
        )
        if MASKED_LM_LOGITS in outputs:
            self._holder.masked_lm = tf.function(
                lambda token_ids, padding_mask, language_ids, mask_positions: self._holder.model(
                    {
                        "token_ids": token_ids,
                        "padding_mask": padding_mask,
                        "language_ids": language_ids,
                        "mask_positions": mask_positions,
                    },
                    training=False,
                    outputs=[MASKED_LM_LOGITS],
                )[MASKED_LM_LOGITS],
                input_signature=id_specs + [tf.TensorSpec([None, None], tf.int32)],
            )
        self.has_masked_lm = MASKED_LM_LOGITS in outputs
        self.token_class_names = list(model.token_class_names or [])
        self.sentence_class_names = list(model.sentence_class_names or [])
        if self.token_class_names:
            self._tag_names = tf.constant(self.token_class_names, tf.string)
        if self.sentence_class_names:
            self._class_names = tf.constant(self.sentence_class_names, tf.string)

    @staticmethod
    def _check_synthetic(model, tokenizer, synthetic, languages):
        missing = [code for code in languages.codes if code not in synthetic.codes]
        if missing:
            raise ValueError(
                f"Model languages {missing} are not among the synthetic languages {synthetic.codes}."
            )
        if synthetic.vocab_size != model.encoder.vocabulary_size:
            raise ValueError(
                f"Synthetic languages {synthetic.codes} need {synthetic.vocab_size} ids; the model has "
                f"{model.encoder.vocabulary_size}."
            )
        if tokenizer is not None and tokenizer.vocab_size != synthetic.base_vocab_size:
            raise ValueError(
                f"Tokenizer vocabulary size {tokenizer.vocab_size} differs from the synthetic languages' "
                f"base vocabulary {synthetic.base_vocab_size}."
            )

    # ------------------------------------------------------------------ signatures
    def signature_functions(self) -> dict:
        """Signature name -> concrete function, for `tf.saved_model.save`."""
        request_spec = _TEXT_SPEC if self.text_mode else _IDS_SPEC
        functions = {
            SERVING_DEFAULT: tf.function(self._serving_default).get_concrete_function(**_IDS_SPEC),
            EMBED: tf.function(self._embed).get_concrete_function(**request_spec),
        }
        if self.text_mode:
            functions[SERVE_TEXT] = tf.function(self._serve_text).get_concrete_function(**_TEXT_SPEC)
        if self.has_masked_lm:
            functions[FILL_MASK] = tf.function(self._fill_mask).get_concrete_function(**request_spec)
        if self.token_class_names:
            functions[TAG] = tf.function(self._tag).get_concrete_function(**request_spec)
        if self.sentence_class_names:
            functions[SENTENCE_CLASSIFICATION] = tf.function(self._sentence_classification).get_concrete_function(
                **request_spec
            )
            functions[CLASSIFY] = tf.function(self._classify).get_concrete_function(inputs=_EXAMPLES_SPEC)
        return functions

    def method_names(self) -> dict:
        """Signature name -> SignatureDef method name (TF Serving's Classify needs its own)."""
        return {
            name: CLASSIFY_METHOD_NAME if name == CLASSIFY else PREDICT_METHOD_NAME for name in self.signature_names()
        }

    def signature_names(self) -> list:
        names = [SERVING_DEFAULT, EMBED]
        if self.text_mode:
            names.append(SERVE_TEXT)
        if self.has_masked_lm:
            names.append(FILL_MASK)
        if self.token_class_names:
            names.append(TAG)
        if self.sentence_class_names:
            names += [SENTENCE_CLASSIFICATION, CLASSIFY]
        return names

    def _serving_default(self, token_ids, padding_mask, language):
        inputs = self._checked_id_inputs(token_ids, padding_mask, language)
        results = self._run(inputs, [SEQUENCE_OUTPUT, EMBEDDING])
        return {"sequence_output": results[SEQUENCE_OUTPUT], "embedding": results[EMBEDDING]}

    def _serve_text(self, text, language):
        inputs = self._text_inputs(text, language)
        results = self._run(inputs, [SEQUENCE_OUTPUT, EMBEDDING])
        return {
            "token_ids": inputs["token_ids"],
            "padding_mask": inputs["padding_mask"],
            "sequence_output": results[SEQUENCE_OUTPUT],
            "embedding": results[EMBEDDING],
        }

    def _embed(self, **request):
        inputs = self._request_inputs(request)
        return {"embedding": self._run(inputs, [EMBEDDING])[EMBEDDING]}

    def _fill_mask(self, **request):
        inputs = self._request_inputs(request, with_masks=True)
        positions = text_inputs.mask_positions(inputs["token_ids"], self._mask_id)
        valid = positions >= 0
        inputs["mask_positions"] = tf.maximum(positions, 0)
        logits = self._run(inputs, [MASKED_LM_LOGITS])[MASKED_LM_LOGITS]
        ids = tf.range(tf.shape(logits)[-1])
        special = tf.reduce_any(tf.equal(ids[:, None], tf.constant(self._special_token_ids)[None, :]), axis=1)
        excluded = special | (ids >= self._answer_ids)
        if self.synthetic_languages is not None:
            # Nor is a word of another synthetic language: [B, 1, V].
            low = tf.gather(self._language_id_low, inputs["language_ids"])[:, None, None]
            high = tf.gather(self._language_id_high, inputs["language_ids"])[:, None, None]
            excluded = tf.logical_or(excluded, tf.logical_or(ids < low, ids >= high))
        logits = tf.where(excluded, tf.constant(float("-inf"), logits.dtype), logits)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        top_probabilities, top_ids = tf.math.top_k(probabilities, k=self.top_k)
        valid_k = tf.expand_dims(valid, -1)
        top_ids = tf.where(valid_k, top_ids, -1)
        outputs = {
            "mask_positions": positions,
            "top_token_ids": top_ids,
            "top_probabilities": tf.where(valid_k, top_probabilities, 0.0),
        }
        if self.tokenizer is not None:
            spelled = self.tokenizer.id_to_token(self._base_ids(tf.maximum(top_ids, 0)))
            outputs["top_tokens"] = tf.where(valid_k, spelled, "")
            outputs["token_ids"] = inputs["token_ids"]
        return outputs

    def _tag(self, **request):
        inputs = self._request_inputs(request)
        logits = self._run(inputs, [TOKEN_LOGITS])[TOKEN_LOGITS]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        real = tf.equal(inputs["padding_mask"], 1)
        tag_ids = tf.where(real, tf.argmax(probabilities, axis=-1, output_type=tf.int32), -1)
        outputs = {
            "tag_ids": tag_ids,
            "tags": tf.where(real, tf.gather(self._tag_names, tf.maximum(tag_ids, 0)), ""),
            "tag_probabilities": tf.where(real, tf.reduce_max(probabilities, axis=-1), 0.0),
        }
        if self.tokenizer is not None:
            spelled = self.tokenizer.id_to_token(self._base_ids(inputs["token_ids"]))
            outputs["tokens"] = tf.where(real, spelled, "")
            outputs["token_ids"] = inputs["token_ids"]
            outputs["padding_mask"] = inputs["padding_mask"]
        return outputs

    def _sentence_classification(self, **request):
        probabilities = self._sentence_probabilities(self._request_inputs(request))
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "class_ids": class_ids,
            "class_names": tf.gather(self._class_names, class_ids),
            "probabilities": probabilities,
        }

    def _classify(self, inputs):
        request = self._parse_examples(inputs)
        probabilities = self._sentence_probabilities(self._request_inputs(request))
        batch = tf.shape(probabilities)[0]
        classes = tf.tile(tf.expand_dims(self._class_names, 0), tf.stack([batch, 1]))
        return {"classes": classes, "scores": probabilities}

    # ------------------------------------------------------------------ helpers
    def _base_ids(self, ids):
        """Model ids -> the tokenizer's ids (synthetic languages' shifted ids back to their base)."""
        if self.synthetic_languages is None:
            return ids
        return self.synthetic_languages.to_base_ids(ids)

    def _sentence_probabilities(self, inputs):
        logits = self._run(inputs, [SENTENCE_LOGITS])[SENTENCE_LOGITS]
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    def _run(self, inputs, outputs):
        arguments = (inputs["token_ids"], inputs["padding_mask"], inputs["language_ids"])
        if outputs == [MASKED_LM_LOGITS]:
            return {MASKED_LM_LOGITS: self._holder.masked_lm(*arguments, tf.cast(inputs["mask_positions"], tf.int32))}
        results = self._holder.encode(*arguments)
        return {name: results[name] for name in outputs}

    def _request_inputs(self, request, with_masks=False):
        if self.text_mode:
            return self._text_inputs(request["text"], request["language"], with_masks=with_masks)
        return self._checked_id_inputs(request["token_ids"], request["padding_mask"], request["language"])

    def _text_inputs(self, text, language, with_masks=False):
        batch = tf.size(text)
        # The tokenizer would read invalid UTF-8 without complaint (as replacement
        # characters); the caller is told instead. Transcoding leaves valid text unchanged.
        valid_utf8 = tf.equal(tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace"), text)
        checks = [
            tf.debugging.Assert(batch > 0, ["Empty batch: the request has no examples."]),
            tf.debugging.Assert(
                tf.equal(tf.size(language), batch),
                ["Mismatched lengths: language has", tf.size(language), "values for", batch, "texts."],
            ),
            tf.debugging.Assert(
                tf.reduce_all(valid_utf8),
                ["Invalid UTF-8 in 'text' of example(s)", tf.where(tf.logical_not(valid_utf8))[:, 0], "(0-based)."],
            ),
        ]
        with tf.control_dependencies(checks):
            text = tf.identity(text)
        language_ids = self.languages.lookup(language)
        transform = None
        if self.synthetic_languages is not None:
            codes = self.languages.codes

            def transform(word_pieces):
                return self.synthetic_languages.transform_by_language(word_pieces, language_ids, codes)
        encode = text_inputs.encode_text_with_masks if with_masks else text_inputs.encode_text
        inputs = encode(self.tokenizer, text, self.max_length, transform)
        inputs["language_ids"] = language_ids
        return inputs

    def _checked_id_inputs(self, token_ids, padding_mask, language):
        shape = tf.shape(token_ids)
        in_range = tf.logical_and(token_ids >= 0, token_ids < self.vocabulary_size)
        checks = [
            tf.debugging.Assert(shape[0] > 0, ["Empty batch: the request has no examples."]),
            tf.debugging.Assert(
                tf.reduce_all(tf.equal(tf.shape(padding_mask), shape)),
                [
                    "Mismatched lengths: padding_mask has shape",
                    tf.shape(padding_mask),
                    "but token_ids has shape",
                    shape,
                ],
            ),
            tf.debugging.Assert(
                tf.equal(tf.size(language), shape[0]),
                ["Mismatched lengths: language has", tf.size(language), "values for", shape[0], "examples."],
            ),
            tf.debugging.Assert(
                shape[1] <= self.max_length,
                ["token_ids has", shape[1], f"positions; the model has {self.max_length}."],
            ),
            tf.debugging.Assert(
                tf.reduce_all(in_range),
                [f"token_ids must lie in [0, {self.vocabulary_size}); found values outside it."],
            ),
            tf.debugging.Assert(
                tf.reduce_all(tf.logical_or(tf.equal(padding_mask, 0), tf.equal(padding_mask, 1))),
                ["padding_mask must hold only 0 and 1."],
            ),
        ]
        with tf.control_dependencies(checks):
            return {
                "token_ids": tf.identity(token_ids),
                "padding_mask": tf.identity(padding_mask),
                "language_ids": self.languages.lookup(language),
            }

    def _parse_examples(self, serialized):
        if self.text_mode:
            features = {
                "text": tf.io.FixedLenFeature([], tf.string),
                "language": tf.io.FixedLenFeature([], tf.string),
            }
            return tf.io.parse_example(serialized, features)
        features = {
            "token_ids": tf.io.RaggedFeature(tf.int64),
            "language": tf.io.FixedLenFeature([], tf.string),
        }
        parsed = tf.io.parse_example(serialized, features)
        ids = tf.cast(parsed["token_ids"], tf.int32)
        token_ids = ids.to_tensor(default_value=0)
        padding_mask = tf.sequence_mask(ids.row_lengths(), tf.shape(token_ids)[1], dtype=tf.int32)
        return {"token_ids": token_ids, "padding_mask": padding_mask, "language": parsed["language"]}


__all__ = [
    "CLASSIFY",
    "CLASSIFY_METHOD_NAME",
    "EMBED",
    "FILL_MASK",
    "PREDICT_METHOD_NAME",
    "SENTENCE_CLASSIFICATION",
    "SERVE_TEXT",
    "SERVING_DEFAULT",
    "TAG",
    "ServingModule",
]
