"""The last step of ``make demo``: export a model, serve it, answer one request.

    from serving.demo import export_and_query
    export_and_query("/tmp/run")            # a trainer's model_dir, or a MultilingualModel

exports a version under `export_base`, starts `serving.server.ModelServer` on
free loopback ports, sends one request over REST (or gRPC) with
`serving.client`, prints the answer and shuts the server down.
"""

from __future__ import annotations

if __name__ == "__main__":  # before TensorFlow loads: its own log lines only with --verbose
    from tf_metaling.quiet_logs import quiet_tensorflow_logs, verbose_requested

    quiet_tensorflow_logs(verbose_requested())

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile

import numpy as np

from serving import signatures as sig
from serving.client import GrpcClient, RestClient
from serving.export import LANGUAGES_FILE, export_model, export_model_dir
from serving.model_manager import ModelConfig
from serving.server import ModelServer
from tf_metaling.languages import LanguageVocabulary

DEFAULT_TEXT = "the [MASK] is shining today"


def export_and_query(
    model_or_model_dir,
    export_base: str | None = None,
    model_name: str = "tf_metaling",
    tokenizer=None,
    text: str = DEFAULT_TEXT,
    language: str | None = None,
    protocol: str = "rest",
) -> dict:
    """Exports, serves on 127.0.0.1 (free ports), sends one request, prints and returns the answer.

    Args:
        model_or_model_dir: a trainer's model_dir or a `MultilingualModel`.
        export_base: where to export (default: a new temporary directory).
        model_name: the served name.
        tokenizer: the model's `Tokenizer` (a model_dir brings its own vocab.txt).
        text: the request text; with ``[MASK]`` and a masked-LM head the request is
            ``fill_mask``, otherwise ``embed``.
        language: the request's language (default: the model's first language).
        protocol: ``"rest"`` or ``"grpc"``.

    Returns: ``{"version", "signature", "protocol", "outputs"}``.
    """
    if protocol not in ("rest", "grpc"):
        raise ValueError(f"protocol={protocol!r}: expected 'rest' or 'grpc'.")
    export_base = export_base or tempfile.mkdtemp(prefix="tf_metaling_exports_")
    if isinstance(model_or_model_dir, (str, os.PathLike)):
        path = export_model_dir(os.fspath(model_or_model_dir), export_base, model_name)
    else:
        path = export_model(model_or_model_dir, export_base, model_name, tokenizer=tokenizer)
    version = int(os.path.basename(path))
    print(f"exported {path}")

    server = ModelServer([ModelConfig(model_name, os.path.dirname(path))], grpc_port=0, rest_port=0, poll_seconds=0)
    server.start()
    try:
        address = f"127.0.0.1:{server.rest_port if protocol == 'rest' else server.grpc_port}"
        client = (RestClient if protocol == "rest" else GrpcClient)(address, model_name)
        try:
            with server.manager.servable(model_name) as servable:
                signatures = set(servable.signatures)
                language = language or _first_language(servable)
            if sig.SERVE_TEXT in signatures:
                name = sig.FILL_MASK if "[MASK]" in text and sig.FILL_MASK in signatures else sig.EMBED
                outputs = client.predict_text(name, [text], [language])
                request = f"{text!r} ({language})"
            else:  # token-id export: a short sentence of ids
                name = sig.EMBED
                inputs = {
                    "token_ids": np.asarray([[2, 7, 11, 13, 3]], np.int32),
                    "padding_mask": np.ones((1, 5), np.int32),
                    "language": np.asarray([language.encode()], dtype=object),
                }
                outputs = client.predict(inputs, name)
                request = f"token ids [2, 7, 11, 13, 3] ({language})"
        finally:
            client.close()
    finally:
        server.stop()
    print(f"{protocol.upper()} {name} on {model_name} version {version}, request {request}:")
    print(_summary(name, outputs))
    return {"version": version, "signature": name, "protocol": protocol, "outputs": outputs}


def _first_language(servable) -> str:
    with open(os.path.join(servable.path, LANGUAGES_FILE), encoding="utf-8") as file:
        return LanguageVocabulary.from_json(file.read()).codes[0]


def _summary(name, outputs) -> str:
    if name == sig.FILL_MASK:
        tokens = _as_list(outputs["top_tokens"])[0]
        probabilities = _as_list(outputs["top_probabilities"])[0]
        lines = []
        for slot, (words, scores) in enumerate(zip(tokens, probabilities)):
            pairs = ", ".join(f"{_text(w)} {s:.3f}" for w, s in zip(words, scores))
            lines.append(f"  [MASK] #{slot + 1}: {pairs}")
        return "\n".join(lines)
    embedding = np.asarray(_as_list(outputs["embedding"])[0], dtype=np.float32)
    return f"  embedding: {embedding.size} dims, norm {np.linalg.norm(embedding):.3f}, first {np.round(embedding[:4], 3).tolist()}"


def _as_list(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Export a model_dir, serve it on loopback, answer one request.")
    parser.add_argument("model_dir")
    parser.add_argument("--export_base", default=None)
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--language", default=None)
    parser.add_argument("--protocol", default="rest", choices=["rest", "grpc"])
    parser.add_argument("--verbose", action="store_true", help="Show TensorFlow's own log lines.")
    args = parser.parse_args(argv)
    export_and_query(args.model_dir, args.export_base, text=args.text, language=args.language,
                     protocol=args.protocol)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
