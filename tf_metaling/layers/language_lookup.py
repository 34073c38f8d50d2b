"""A Keras layer that maps language-code strings to language ids inside a model."""

from __future__ import annotations

import keras

from tf_metaling.languages import as_vocabulary


@keras.saving.register_keras_serializable(package="tf_metaling")
class LanguageLookup(keras.layers.Layer):
    """Maps a string tensor of language codes to int32 ids with a `LanguageVocabulary`.

    Unknown codes follow the vocabulary's policy: an `InvalidArgumentError`
    naming the code, or the configured default language.

    Args:
        languages: codes, a `LanguageVocabulary`, or its config dict.

    Example:
    >>> LanguageLookup(["en", "sw"])(tf.constant(["sw", "en"])).numpy().tolist()
    [1, 0]
    """

    def __init__(self, languages, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.language_vocabulary = as_vocabulary(languages)
        self.built = True

    def call(self, codes):
        return self.language_vocabulary.lookup(codes)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, codes):
        return keras.KerasTensor(codes.shape, dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update({"languages": self.language_vocabulary.get_config()})
        return config
