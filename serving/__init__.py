"""Serving: language-aware SavedModel export and a TF-Serving-compatible model server.

- `export`: a `MultilingualModel` (or a trainer's model_dir) -> a TF Serving version
  directory ``<export_base>/<model_name>/<version>/`` with language-aware signatures,
  warmup requests and a model card (`python -m serving.export`, `tf-metaling-export`).
- `signatures`: the exported `tf.Module` and its signatures (`serving_default`,
  `serve_text`, `embed`, `fill_mask`, `tag`, `sentence_classification`, `classify`).
- `server`: REST + gRPC server speaking TF Serving's APIs (`tf-metaling-server`).
- `client`: Python helpers and a CLI over REST and gRPC (`tf-metaling-client`).
- `demo`: `export_and_query`, the last step of ``make demo``.

The library (`tf_metaling`) never imports this package.
"""
