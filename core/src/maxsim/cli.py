"""The `maxsim` command line (`python -m maxsim`): encode, rerank, index, search, serve, demo.

Bad input (a missing, empty or malformed file, a store folder that is missing or
corrupt, a model that cannot load, ...) ends with one `maxsim: ...` line on stderr and
exit code 1; argparse usage errors keep exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from maxsim.cli_serve import add_serve
from maxsim.encoder import DEFAULT_MODEL, ColBERT
from maxsim.hub import LOCAL_FOLDER_FIX
from maxsim.quantization import QUANTIZATIONS, TORCHAO_IMPORT_LOGGERS
from maxsim.stores import DocumentStore, LateInteractionStore, load_store
from maxsim.stores.persistence import MANIFEST
from maxsim.validation import check_text, check_texts

LICENSE_NOTE = (
    f"The default model, {DEFAULT_MODEL}, is licensed CC BY-NC 4.0 (non-commercial use only)."
)
SNIPPET_CHARS = 80
TEXT_SUFFIXES = (".txt", ".md")

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    arguments = _parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except BrokenPipeError:  # stdout closed early (`maxsim ... | head`): exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OSError, ValueError, TypeError) as error:
        print(f"maxsim: {_describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _describe(error: Exception) -> str:
    """The error as one line; file errors as `PATH: reason`."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


# ---------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maxsim", description="Late-interaction retrieval.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_encode(commands)
    _add_rerank(commands)
    _add_index(commands)
    _add_search(commands)
    add_serve(commands, _positive_int)
    demo = _command(
        commands,
        "demo",
        _demo,
        "rerank a small multilingual corpus",
        "Encode a dozen passages in several languages and rerank them for two queries, one "
        "of them cross-lingual. " + LICENSE_NOTE,
        json_output=False,
    )
    demo.add_argument("--top-n", type=_positive_int, default=3, help="passages shown per query")
    return parser


def _command(
    commands: Any,
    name: str,
    run: Command,
    summary: str,
    description: str,
    *,
    json_output: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand with the options every command shares (--model, and --json)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"Hugging Face repo id or local checkpoint folder (default {DEFAULT_MODEL}). "
        + LICENSE_NOTE,
    )
    if json_output:
        parser.add_argument(
            "--json", action="store_true", help="print machine-readable JSON on stdout"
        )
    parser.set_defaults(run=run)
    return parser


def _add_encode(commands: Any) -> None:
    encode = _command(
        commands,
        "encode",
        _encode,
        "encode texts into token vectors",
        "Encode documents (or queries) and print each text's token rows and dim.",
    )
    encode.add_argument("texts", nargs="*", metavar="TEXT", help="texts to encode")
    encode.add_argument(
        "--file", help="read texts one per line from FILE ('-' = stdin; blank lines skipped)"
    )
    encode.add_argument("--queries", action="store_true", help="encode as queries")
    encode.add_argument(
        "--output", metavar="OUT.safetensors", help="write the arrays (keys text_0, text_1, ...)"
    )
    _add_quantize(encode)


def _add_rerank(commands: Any) -> None:
    rerank = _command(
        commands,
        "rerank",
        _rerank,
        "rerank the passages of a file for a query",
        "Score every passage of FILE against QUERY with MaxSim, best first.",
    )
    rerank.add_argument("query", metavar="QUERY")
    rerank.add_argument(
        "file",
        metavar="FILE",
        help="one passage per line ('-' = stdin), or a .jsonl file with \"text\" fields",
    )
    rerank.add_argument("--top-n", type=_positive_int, help="passages shown (default all)")
    _add_quantize(rerank)


def _add_index(commands: Any) -> None:
    index = _command(
        commands,
        "index",
        _index,
        "add documents to a store folder",
        "Encode documents into the store in --store DIR (created, or extended when it "
        "exists: a document whose id is already stored is replaced).",
    )
    index.add_argument(
        "input",
        metavar="INPUT",
        help='a JSONL file ("text" required, "id" and "metadata" optional) or a folder of '
        ".txt/.md files (id = relative path)",
    )
    index.add_argument("--store", required=True, metavar="DIR", help="the store folder")
    index.add_argument(
        "--chunk-size",
        type=_positive_int,
        help="store long documents as windows of N tokens (overlap: N/4, at most 64)",
    )
    index.add_argument("--batch-size", type=_positive_int, default=32, help="texts per batch")
    index.add_argument(
        "--compressed",
        action="store_true",
        help='build a new store as a compressed PLAIDStore (pip install "maxsim[index]")',
    )
    index.add_argument(
        "--nbits",
        type=int,
        choices=(1, 2, 4),
        default=2,
        help="bits per dimension of a compressed store's residuals (default 2)",
    )
    _add_quantize(index)


def _add_search(commands: Any) -> None:
    search = _command(
        commands,
        "search",
        _search,
        "search a store folder",
        "Search the store in DIR (built by `maxsim index`) for QUERY.",
    )
    search.add_argument("store", metavar="DIR")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("-k", type=_positive_int, default=10, help="hits shown (default 10)")
    search.add_argument("--filter", metavar="JSON", help='metadata filter, e.g. \'{"lang": "de"}\'')


def _add_quantize(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="run the model's linear layers in int8 on the CPU (needs maxsim[int8]; the "
        "first texts wait for a one-off compilation)",
    )


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


# ---------------------------------------------------------------- commands


def _encode(arguments: argparse.Namespace) -> int:
    texts = [*arguments.texts, *(_read_lines(arguments.file) if arguments.file else [])]
    if not texts:
        raise ValueError("nothing to encode: pass TEXT arguments or --file FILE")
    check_texts(texts, "texts")
    model = _load_model(arguments.model, arguments.quantize)
    encode = model.encode_queries if arguments.queries else model.encode_documents
    arrays = encode(texts)
    if arguments.output:
        _save_arrays(arguments.output, arrays)
    rows = [
        {"index": i, "text": text, "rows": int(array.shape[0]), "dim": int(array.shape[1])}
        | ({"embeddings": array.tolist()} if arguments.json else {})
        for i, (text, array) in enumerate(zip(texts, arrays, strict=True))
    ]
    _emit_rows(arguments.json, rows, ("index", "rows", "dim", "text"))
    return 0


def _rerank(arguments: argparse.Namespace) -> int:
    check_text(arguments.query, "QUERY")
    passages = _read_passages(arguments.file)
    model = _load_model(arguments.model, arguments.quantize)
    results = model.rerank(arguments.query, passages, top_n=arguments.top_n)
    rows = [
        {"rank": rank, "index": result.index, "score": result.score, "text": result.document}
        for rank, result in enumerate(results, 1)
    ]
    _emit_rows(arguments.json, rows, ("rank", "score", "text"))
    return 0


def _index(arguments: argparse.Namespace) -> int:
    source = Path(arguments.input)
    documents = _folder_documents(source) if source.is_dir() else _read_jsonl(source)
    model = _load_model(arguments.model, arguments.quantize)
    store = _open_store(Path(arguments.store), model, arguments)
    before = len(store)
    store.add(
        [document["text"] for document in documents],
        [document.get("metadata") or {} for document in documents],
        [document.get("id") or uuid.uuid4().hex for document in documents],
        batch_size=arguments.batch_size,
        show_progress_bar=True,
    )
    store.save(arguments.store)
    summary = {
        "store": arguments.store,
        "indexed": len(documents),
        "added": len(store) - before,
        "documents": len(store),
    }
    line = (
        f"indexed {summary['indexed']} documents into {arguments.store} "
        f"({summary['added']} new, {summary['documents']} in the store)"
    )
    _emit(arguments.json, summary, [line])
    return 0


def _search(arguments: argparse.Namespace) -> int:
    check_text(arguments.query, "QUERY")
    metadata_filter = _parse_filter(arguments.filter)
    folder = _saved_store(Path(arguments.store))
    store = load_store(folder, _load_model(arguments.model))
    hits = store.search(arguments.query, k=arguments.k, filter=metadata_filter)
    rows = [
        {
            "rank": rank,
            "id": hit.id,
            "score": hit.score,
            "normalized_score": hit.normalized_score,
            "text": hit.text,
            "metadata": hit.metadata,
            "chunk": hit.chunk,
        }
        for rank, hit in enumerate(hits, 1)
    ]
    _emit_rows(arguments.json, rows, ("rank", "id", "score", "normalized_score", "text"))
    return 0


def _demo(arguments: argparse.Namespace) -> int:
    corpus = json.loads(
        resources.files("maxsim").joinpath("data/demo_corpus.json").read_text(encoding="utf-8")
    )
    model = _load_model(arguments.model)
    passages = [passage["text"] for passage in corpus["passages"]]
    languages = [passage["lang"] for passage in corpus["passages"]]
    print(f"model: {model.name} ({model.layout}, dim {model.dim}); {len(passages)} passages")
    for query in corpus["queries"]:
        print(f"\nquery: {query}")
        for rank, result in enumerate(model.rerank(query, passages, top_n=arguments.top_n), 1):
            print(f"  {rank}. {result.score:7.3f}  [{languages[result.index]}] {result.document}")
    return 0


# ---------------------------------------------------------------- model and store


def _load_model(name: str, quantize: str | None = None) -> ColBERT:
    """The checkpoint `name`, or a ValueError that says how to pass a local one."""
    _quiet_transformers()
    try:
        return ColBERT.from_pretrained(name, quantize=quantize)
    except ImportError as error:
        raise ValueError(str(error)) from error
    except (OSError, ValueError) as error:
        detail = str(error).rstrip(".")
        where = f"{LOCAL_FOLDER_FIX} with --model PATH"
        if LOCAL_FOLDER_FIX in detail:
            detail = detail.replace(LOCAL_FOLDER_FIX, where, 1)
        else:
            detail = f"{detail}; {where}"
        raise ValueError(f"cannot load model {name!r}: {detail}") from error


def _quiet_transformers() -> None:
    """Keep transformers' weight-loading bars and advice off stderr, and the warnings that
    torchao logs on import (transformers imports it when installed) with them."""
    from transformers.utils import logging as transformers_logging

    for name in TORCHAO_IMPORT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def _saved_store(folder: Path) -> Path:
    """`folder` if it holds a saved store (checked before the model loads)."""
    if not (folder / MANIFEST).is_file():
        raise ValueError(
            f"{folder} holds no maxsim store (no {MANIFEST}); "
            f"build one with: maxsim index INPUT --store {folder}"
        )
    return folder


def _open_store(folder: Path, model: ColBERT, arguments: argparse.Namespace) -> DocumentStore:
    """The store saved in `folder` (of whichever kind), or a new one when there is none:
    a `PLAIDStore` with `--compressed`, else a `LateInteractionStore`."""
    chunk_size = arguments.chunk_size
    if not (folder / MANIFEST).exists():
        overlap = min(64, chunk_size // 4) if chunk_size else 64
        if arguments.compressed:
            from maxsim.stores.plaid import PLAIDStore

            return PLAIDStore(model, arguments.nbits, chunk_size=chunk_size, chunk_overlap=overlap)
        return LateInteractionStore(model, chunk_size=chunk_size, chunk_overlap=overlap)
    store = load_store(folder, model)
    if arguments.compressed and store.format != "maxsim.PLAIDStore":
        raise ValueError(
            f"{folder} holds an exact store; leave out --compressed, or index into a new folder"
        )
    if chunk_size is not None and chunk_size != store.chunk_size:
        built = f"--chunk-size {store.chunk_size}" if store.chunk_size else "no --chunk-size"
        raise ValueError(
            f"{folder} was built with {built}; pass the same (or none), or index into a new folder"
        )
    return store


def _parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--filter is not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise ValueError(f"--filter must be a JSON object, got {text!r}")
    return parsed


def _save_arrays(path: str, arrays: Sequence[Any]) -> None:
    """Arrays as safetensors (keys text_0, text_1, ...); a bad path is an OSError."""
    from safetensors.numpy import save

    Path(path).write_bytes(save({f"text_{i}": array for i, array in enumerate(arrays)}))


# ---------------------------------------------------------------- input files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason})") from error


def _read_lines(name: str) -> list[str]:
    """Non-blank lines of file `name` ('-' = stdin), stripped."""
    text = sys.stdin.read() if name == "-" else _read_text(Path(name))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{'stdin' if name == '-' else name} is empty")
    return lines


def _read_passages(name: str) -> list[str]:
    if name.endswith(".jsonl"):
        return [record["text"] for record in _read_jsonl(Path(name))]
    return _read_lines(name)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One checked record per non-blank line; errors name the line."""
    records = [
        _jsonl_record(line, f"{path}:{number}")
        for number, line in enumerate(_read_text(path).split("\n"), 1)
        if line.strip()
    ]
    if not records:
        raise ValueError(f"{path} is empty")
    return records


def _jsonl_record(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise ValueError(f'{where}: expected a JSON object with a "text" string')
    if not record["text"].strip():
        raise ValueError(f'{where}: "text" is empty')
    identifier = record.get("id", 0)
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)) or identifier == "":
        raise ValueError(f'{where}: "id" must be a non-empty string or an integer')
    if not isinstance(record.get("metadata", {}), dict):
        raise ValueError(f'{where}: "metadata" must be a JSON object')
    return record | ({"id": str(record["id"])} if "id" in record else {})


def _folder_documents(folder: Path) -> list[dict[str, Any]]:
    """The .txt/.md files under `folder` (hidden ones skipped), sorted by path."""
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in TEXT_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not files:
        raise ValueError(f"{folder} has no .txt or .md files")
    return [_file_document(folder, path) for path in files]


def _file_document(folder: Path, path: Path) -> dict[str, Any]:
    text = _read_text(path)
    if not text.strip():
        raise ValueError(f"{path} is empty")
    relative = path.relative_to(folder).as_posix()
    return {"id": relative, "text": text, "metadata": {"path": relative}}


# ---------------------------------------------------------------- output


def _emit(as_json: bool, payload: Any, lines: Sequence[str]) -> None:
    """`payload` as JSON, or the human-readable `lines`, on stdout."""
    print(json.dumps(payload, ensure_ascii=False) if as_json else "\n".join(lines))


def _emit_rows(as_json: bool, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Result rows as a JSON list, or as a table of `columns`."""
    _emit(as_json, rows, _table(rows, columns) if rows else ["no results"])


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    header = [column.replace("_", " ") for column in columns]
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(value) for value in column) for column in zip(header, *cells, strict=True)]
    return [
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *cells)
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."
