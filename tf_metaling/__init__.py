"""tf_metaling: multilingual transformers with language-specific layers and meta-learning.

Layers (`tf_metaling.layers`) route every example through its own language's
weights; `tf_metaling.models` builds the encoder and task model on them;
`tf_metaling.meta` trains the language-specific layers as meta-parameters.
"""

__version__ = "0.1.0"
__all__ = ["LanguageVocabulary", "__version__"]


def __getattr__(name):
    # Imported on first use, so that `import tf_metaling.quiet_logs` runs before TensorFlow loads.
    if name == "LanguageVocabulary":
        from tf_metaling.languages import LanguageVocabulary

        return LanguageVocabulary
    raise AttributeError(f"module 'tf_metaling' has no attribute {name!r}")
