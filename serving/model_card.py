"""The Markdown model card written into every exported version directory.

It says what a person deploying the export needs before sending a request: the
languages and their order, the unknown-language policy, which layers are
language specific, the signatures with their inputs and outputs, the training
configuration and the evaluation metrics the trainer recorded.
"""

from __future__ import annotations

import datetime
import json

from tf_metaling.models import partition_variables

MODEL_CARD_FILE = "model_card.md"


def render_model_card(
    model,
    serving_module,
    model_name: str,
    version: int,
    signature_specs: dict,
    training_config: str | None = None,
    metrics: dict | None = None,
    source: str | None = None,
) -> str:
    """Markdown text of the card.

    Args:
        model: the exported `MultilingualModel`.
        serving_module: the `signatures.ServingModule` that was saved.
        model_name, version: where the export lives.
        signature_specs: ``{signature: (inputs, outputs)}``, each a list of
            ``"name dtype shape"`` strings.
        training_config: the resolved experiment config (YAML text), if known.
        metrics: evaluation metrics, if known.
        source: where the weights came from (checkpoint path or "Keras model").
    """
    encoder = model.encoder
    languages = serving_module.languages
    partition = partition_variables(model)
    if languages.unknown == "default":
        policy = f"unknown codes are served as `{languages.default_language}`"
    else:
        policy = "an unknown code fails the request with InvalidArgument naming the code"
    kinds = ", ".join(encoder.language_specific) if encoder.language_specific else "none (fully shared)"
    lines = [
        f"# Model card: {model_name}, version {version}",
        "",
        f"Exported {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}"
        + (f" from {source}." if source else "."),
        "",
        "## Languages",
        "",
        "| index | code |",
        "|---|---|",
        *[f"| {index} | `{code}` |" for index, code in enumerate(languages.codes)],
        "",
        (
            f"Every request names its language per example (`language` input); a batch may mix languages. "
            f"Unknown language policy: {policy}."
        ),
        "",
        "## Architecture",
        "",
        (
            f"- Encoder: {encoder.num_layers} layers, hidden size {encoder.hidden_dim}, {encoder.num_heads} heads, "
            f"feed-forward {encoder.intermediate_dim}, {encoder.max_sequence_length} positions, "
            f"{'pre' if encoder.normalize_first else 'post'}-LN."
        ),
        f"- Language-specific layers: {kinds}"
        + (f" in blocks {list(encoder.language_specific_layers)}" if encoder.language_specific else "")
        + (f", adapter width {encoder.adapter_dim}" if any("adapter" in k for k in encoder.language_specific) else "")
        + ".",
        (
            f"- Parameters: {partition.num_shared_parameters:,} shared, "
            f"{partition.num_language_parameters_per_language:,} per language."
        ),
        f"- Subword vocabulary: {encoder.vocabulary_size} ids"
        + (
            " (tokenizer exported: text signatures available)."
            if serving_module.text_mode
            else " (no tokenizer exported: token-id signatures only)."
        )
        + (
            f" Synthetic languages: text is the base language's; each language's transform "
            f"({_synthetic_summary(serving_module.synthetic_languages, serving_module.languages.codes)}) "
            "is applied in the graph; token ids are sent already shifted."
            if serving_module.text_mode and serving_module.synthetic_languages is not None
            else ""
        ),
        (
            f"- Heads: masked LM {'yes' if serving_module.has_masked_lm else 'no'}; "
            f"tagging {list(serving_module.token_class_names) or 'no'}; "
            f"sentence classes {list(serving_module.sentence_class_names) or 'no'}."
        ),
        "",
        "## Signatures",
        "",
        "| signature | inputs | outputs |",
        "|---|---|---|",
    ]
    for name, (inputs, outputs) in signature_specs.items():
        lines.append(f"| `{name}` | {'<br>'.join(inputs)} | {'<br>'.join(outputs)} |")
    lines += [
        "",
        (
            "`serving_default` uses core TensorFlow ops only. Text signatures run the tokenizer in the graph "
            "with the tensorflow-text ops listed in `serving/tf_text_2_12_ops.txt`; on TF Serving they need a "
            "build that links tensorflow-text (the stock image does)."
        ),
        "",
        "## Training configuration",
        "",
    ]
    lines += ["```yaml", training_config.rstrip(), "```"] if training_config else ["Not recorded with this export."]
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_format(value)} |" for key, value in sorted(_flatten(metrics).items())]
    else:
        lines.append("Not recorded with this export.")
    lines += [
        "",
        "## Limitations",
        "",
        "- Languages outside the table above have no language-specific weights.",
        (
            "- Exported and tested with TensorFlow 2.20 and the project's TF-Serving-compatible server; "
            "loading in a `tensorflow_model_server` binary was not tested here."
        ),
        "",
    ]
    return "\n".join(lines)


def _flatten(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if not isinstance(value, str) else value


def _synthetic_summary(synthetic, codes) -> str:
    parts = []
    for code in codes:
        low, high = synthetic.id_range(code)
        order = "reversed word order" if synthetic.language(code).reverse else "word order kept"
        parts.append(f"{code}: ids {low}-{high - 1}, {order}")
    return "; ".join(parts)
