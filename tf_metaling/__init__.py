"""tf_metaling: multilingual transformers with language-specific layers and meta-learning.

Layers (`tf_metaling.layers`) route every example through its own language's
weights; `tf_metaling.models` builds the encoder and task model on them;
`tf_metaling.meta` trains the language-specific layers as meta-parameters.
"""

from tf_metaling.languages import LanguageVocabulary

__version__ = "0.1.0"
__all__ = ["LanguageVocabulary", "__version__"]
