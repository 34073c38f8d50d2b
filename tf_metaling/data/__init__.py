"""Data for multilingual training: readers, corpora, pipelines, tasks.

Text becomes token ids with a `tf_metaling.tokenizers` tokenizer (in the graph,
SavedModel-ready); this package reads, batches and masks it.

- Readers (streaming, errors name file:line): `TextLineReader` (plain text,
  gzip), `ConlluReader` (UD POS), `IobReader` (WikiAnn/PAN-X and CoNLL NER),
  `NliReader` (XNLI TSV), `tfrecord_io`.
- `pipelines`: per-language streams, temperature sampling, mixed or
  one-language batches, dynamic MLM masking, `tf.distribute` sharding,
  held-out and meta batches.
- `token_tagging` / `sentence_classification`: task batches.
- `corpora`: the built-in parallel corpus fetched with pip; `tasks`: the
  evaluation tasks built from it; `synthetic`: derived languages.

Bad input raises `tf_metaling.errors.DataFormatError`; languages are sampled
with `tf_metaling.language_sampling`. This package depends on those,
`tf_metaling.tokenizers`, `tf_metaling.languages`, `tf_metaling.atomic_files`
and `tf_metaling.package_cache` only (never on models, meta-learning, trainers
or serving).
"""

from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.iob_reader import IobReader
from tf_metaling.data.masking import MaskingConfig, mask_batch
from tf_metaling.data.nli_reader import NLI_LABELS, NliReader
from tf_metaling.data.pipelines import (
    MLM_KEYS,
    MlmPipelineConfig,
    language_batches,
    meta_batch,
    meta_batch_dataset,
    mlm_dataset,
    mlm_dataset_fn,
    sampling_probabilities,
)
from tf_metaling.data.sentence_classification import (
    CLASSIFICATION_KEYS,
    ClassificationExample,
    classification_dataset,
)
from tf_metaling.data.text_reader import TextLineReader
from tf_metaling.data.token_tagging import (
    PANX_TAGS,
    TAGGING_KEYS,
    UPOS_TAGS,
    TaggedSentence,
    encode_tagged_words,
    tagging_dataset,
)

__all__ = [
    "CLASSIFICATION_KEYS",
    "MLM_KEYS",
    "NLI_LABELS",
    "PANX_TAGS",
    "TAGGING_KEYS",
    "UPOS_TAGS",
    "ClassificationExample",
    "ConlluReader",
    "IobReader",
    "MaskingConfig",
    "MlmPipelineConfig",
    "NliReader",
    "TaggedSentence",
    "TextLineReader",
    "classification_dataset",
    "encode_tagged_words",
    "language_batches",
    "mask_batch",
    "meta_batch",
    "meta_batch_dataset",
    "mlm_dataset",
    "mlm_dataset_fn",
    "sampling_probabilities",
    "tagging_dataset",
]
