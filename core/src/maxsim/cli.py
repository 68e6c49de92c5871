"""The `maxsim` command line (`python -m maxsim`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources

from maxsim.encoder import DEFAULT_MODEL, ColBERT

LICENSE_NOTE = (
    f"The default model, {DEFAULT_MODEL}, is licensed CC BY-NC 4.0 (non-commercial use only)."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    return int(arguments.run(arguments))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maxsim", description="Late-interaction retrieval.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="rerank a small multilingual corpus",
        description="Encode a dozen passages in several languages and rerank them for two "
        "queries, one of them cross-lingual. " + LICENSE_NOTE,
    )
    demo.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"Hugging Face repo id or local checkpoint folder (default {DEFAULT_MODEL})",
    )
    demo.add_argument("--top-n", type=int, default=3, help="passages shown per query")
    demo.set_defaults(run=_demo)
    return parser


def _demo(arguments: argparse.Namespace) -> int:
    corpus = json.loads(
        resources.files("maxsim").joinpath("data/demo_corpus.json").read_text(encoding="utf-8")
    )
    try:
        model = ColBERT.from_pretrained(arguments.model)
    except (OSError, ValueError) as error:
        print(
            f"maxsim: cannot load model {arguments.model!r}: {error}\n"
            "Pass a local checkpoint folder with --model PATH (or MODEL=PATH make demo).",
            file=sys.stderr,
        )
        return 1
    passages = [passage["text"] for passage in corpus["passages"]]
    languages = [passage["lang"] for passage in corpus["passages"]]
    print(f"model: {model.name} ({model.layout}, dim {model.dim}); {len(passages)} passages")
    for query in corpus["queries"]:
        print(f"\nquery: {query}")
        for rank, result in enumerate(model.rerank(query, passages, top_n=arguments.top_n), 1):
            print(f"  {rank}. {result.score:7.3f}  [{languages[result.index]}] {result.document}")
    return 0
