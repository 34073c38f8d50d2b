"""Fetches (if needed) and describes the built-in corpus.

    python -m tf_metaling.data.corpora --cache_dir ~/.cache/tf_metaling

prints one row per language (sentences per split, tokens, script, sources,
status) and every excluded column with the reason, plus the licenses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tf_metaling.data.corpora", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--cache_dir",
        default=None,
        help="cache directory (default: $TF_METALING_CACHE or ~/.cache/tf_metaling)",
    )
    parser.add_argument(
        "--languages", default="all", help='"all", "paper", or comma-separated codes'
    )
    parser.add_argument("--low_resource_size", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_metaling.data.corpora.builtin_corpus import (
        DEFAULT_LOW_RESOURCE_SIZE,
        corpus_root,
        load_builtin_corpus,
    )

    languages = {"all": "all", "paper": None}.get(args.languages)
    if languages is None and args.languages != "paper":
        languages = [c.strip() for c in args.languages.split(",") if c.strip()]
    start = time.time()
    corpus = load_builtin_corpus(
        cache_dir=args.cache_dir,
        languages=languages,
        low_resource_size=args.low_resource_size or DEFAULT_LOW_RESOURCE_SIZE,
    )
    if args.json:
        json.dump(corpus.table(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"built-in corpus at {corpus_root(args.cache_dir)} ({time.time() - start:.1f}s)")
        print(
            f"groups: high={corpus.groups['high']} low={corpus.groups['low']} "
            f"(low-resource train subsampled to {corpus.low_resource_size} sentences)"
        )
        print(corpus.format_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
