"""Encoding speed of a full-size jina-colbert-v2 on the CPU, against a padded transformers model.

The checkpoint has the real architecture (24 layers, hidden 1024, XLM-R vocabulary) and
layout but random weights, so no download is needed: it is written once to a temporary
folder, or to --checkpoint-dir and reused from there. Documents are 150-500 tokens built
from XQuAD-R paragraphs; queries come from the same set. The baseline is the cost shape
of the reference code: transformers' eager `XLMRobertaModel` of the same size on padded
batches of 32 in input order, plus a 1024 -> 128 projection.

Run from the repository root (about 5-10 minutes on 2 cores):

    .venv/bin/python benchmarks/encode.py            # or: make bench
    .venv/bin/python benchmarks/encode.py --checkpoint-dir /tmp/jina-random --documents 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import common
import torch
import torch.nn.functional as F
from common import MatmulRates, QuietTimer, machine, markdown_table, read_jsonl
from cpu_cost import minilm_quality, rerank_twice, stream_through_cache, tiny_golden_rankings
from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

import maxsim
from maxsim.models.jina_xlmr import PREFIX, JinaXLMRConfig, JinaXLMRModel

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "jina-colbert-v2-tiny"
COPIED_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "artifact.metadata",
)
FULL_SIZE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "vocab_size": 250004,
}
ROTARY_BASE = 10000.0
LAYERS = FULL_SIZE["num_hidden_layers"]
HIDDEN = FULL_SIZE["hidden_size"]
OUTPUT_DIM = 128
INIT_STD = 0.02
BASELINE_MAX_LENGTH = 512
QUERY_LENGTH = 32
STREAM_BATCH = 20


@dataclass(frozen=True)
class Workload:
    """Texts to encode, and the sequence lengths a model runs on for them.

    `computed` holds one length per sequence the model computes (padded sequences count
    at their padded length); `useful` is the number of real tokens among them.
    """

    name: str
    texts: list[str]
    run: Callable[[list[str]], Any]
    computed: list[int]
    useful: int
    flops_per_token: float
    layers: int
    hidden: int

    def flops(self) -> float:
        """Forward FLOPs: 2 x non-embedding params per token, plus 4 L hidden per layer."""
        return sum(
            length * self.flops_per_token + self.layers * 4 * length * length * self.hidden
            for length in self.computed
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared/data/xquad-r/en")
    parser.add_argument("--checkpoint-dir", type=Path, help="where to write (or reuse) it")
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--min-tokens", type=int, default=150)
    parser.add_argument("--max-tokens", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=8, help="texts in the warm-up pass")
    parser.add_argument("--passes", type=int, default=1, help="timed passes (best kept)")
    parser.add_argument("--attempts", type=int, default=2, help="tries per timed chunk")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=common.QUIET_TIMEOUT_SECONDS,
        help="seconds each timed call waits for a quiet CPU (0 on a machine that stays busy)",
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="no padded transformers comparison"
    )
    parser.add_argument("--skip-int8", action="store_true", help="no int8 comparison")
    parser.add_argument(
        "--cache-documents", type=int, default=20, help="documents reranked twice (0: skip)"
    )
    parser.add_argument(
        "--cache-mib", type=int, default=4, help="cache size for the stream (0: skip)"
    )
    parser.add_argument(
        "--quality-queries",
        type=int,
        default=1190,
        help="XQuAD-R queries for the int8 quality check (0: skip it)",
    )
    return parser.parse_args()


@contextmanager
def checkpoint_folder(requested: Path | None) -> Iterator[Path]:
    """`requested` (filled if empty), or a temporary folder removed afterwards."""
    if requested is not None:
        if not (requested / "model.safetensors").exists():
            write_checkpoint(requested)
        yield requested
        return
    with tempfile.TemporaryDirectory(prefix="jina-colbert-v2-random-") as folder:
        write_checkpoint(Path(folder))
        yield Path(folder)


def write_checkpoint(folder: Path) -> None:
    """A jina-colbert-v2 folder in the real layout with random bfloat16 weights."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        shutil.copy(FIXTURE / name, folder / name)
    config = json.loads((FIXTURE / "config.json").read_text())
    config |= FULL_SIZE | {"rotary_emb_base": ROTARY_BASE}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(random_weights(JinaXLMRConfig.from_dict(config)), folder / "model.safetensors")


def random_weights(config: JinaXLMRConfig) -> dict[str, torch.Tensor]:
    """Every tensor of the model under its checkpoint name: layer norms 1 and 0, the rest
    normal with std 0.02, all bfloat16; plus the `linear.weight` projection."""
    with torch.device("meta"):
        model = JinaXLMRModel(config)
    norms = {name for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        module, _, kind = name.rpartition(".")
        if module in norms:
            value = torch.ones(tensor.shape) if kind == "weight" else torch.zeros(tensor.shape)
        else:
            value = torch.randn(tensor.shape, generator=generator) * INIT_STD
        state[PREFIX + name] = value.to(torch.bfloat16)
    projection = torch.randn((OUTPUT_DIM, config.hidden_size), generator=generator) * INIT_STD
    state["linear.weight"] = projection.to(torch.bfloat16)
    return state


def paragraphs(corpus: list[dict[str, Any]]) -> list[list[str]]:
    """Sentence texts grouped by paragraph (ids look like en_p000_s03), in corpus order."""
    grouped: dict[str, list[str]] = {}
    for row in corpus:
        grouped.setdefault(row["_id"].rsplit("_s", 1)[0], []).append(row["text"])
    return list(grouped.values())


def build_documents(
    model: maxsim.ColBERT, data: Path, count: int, shortest: int, longest: int
) -> list[str]:
    """Up to `count` documents of `shortest`-`longest` tokens: consecutive sentences of one
    paragraph joined while they fit under `longest`."""
    documents: list[str] = []
    for sentences in paragraphs(read_jsonl(data / "corpus.jsonl")):
        lengths = [len(ids) for ids in model.tokenize(sentences, is_query=False)]
        current: list[str] = []
        for sentence, length in zip(sentences, lengths, strict=True):
            if current and token_count(model, [*current, sentence]) > longest:
                documents += fitting(model, current, shortest, longest)
                current = []
            if length <= longest:
                current.append(sentence)
        documents += fitting(model, current, shortest, longest)
        if len(documents) >= count:
            break
    return documents[:count]


def token_count(model: maxsim.ColBERT, sentences: list[str]) -> int:
    return len(model.tokenize([" ".join(sentences)], is_query=False)[0])


def fitting(model: maxsim.ColBERT, sentences: list[str], shortest: int, longest: int) -> list[str]:
    """The joined sentences as a one-item list if their length is in range, else []."""
    if not sentences or not shortest <= token_count(model, sentences) <= longest:
        return []
    return [" ".join(sentences)]


def load_queries(data: Path, count: int) -> list[str]:
    return [row["text"] for row in read_jsonl(data / "queries.jsonl")[:count]]


def non_embedding_parameters(model: nn.Module) -> int:
    return sum(
        parameter.numel()
        for name, parameter in model.named_parameters()
        if "embeddings" not in name and "emb_ln" not in name
    )


class Baseline:
    """The reference cost shape: eager transformers XLM-R on padded batches, projected."""

    def __init__(self, tokenizer: Any, batch_size: int) -> None:
        settings: dict[str, Any] = {
            **FULL_SIZE,
            "max_position_embeddings": BASELINE_MAX_LENGTH + 2,
            "type_vocab_size": 1,
            "layer_norm_eps": 1e-5,
            "pad_token_id": 1,
            "attn_implementation": "eager",
        }
        config = XLMRobertaConfig(**settings)
        self.model = XLMRobertaModel(config, add_pooling_layer=False).float().eval()
        self.projection = nn.Linear(HIDDEN, OUTPUT_DIM, bias=False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def batches(self, texts: list[str], is_query: bool) -> Iterator[dict[str, torch.Tensor]]:
        """Tokenized batches in input order: documents padded to the batch's longest,
        queries to QUERY_LENGTH (ColBERT pads queries with attended mask tokens)."""
        for start in range(0, len(texts), self.batch_size):
            yield self.tokenizer(
                texts[start : start + self.batch_size],
                padding="max_length" if is_query else True,
                truncation=True,
                max_length=QUERY_LENGTH if is_query else BASELINE_MAX_LENGTH,
                return_tensors="pt",
            )

    @torch.inference_mode()
    def encode(self, texts: list[str], is_query: bool) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        for batch in self.batches(texts, is_query):
            hidden = self.model(**batch).last_hidden_state
            vectors = F.normalize(self.projection(hidden), dim=-1)
            keep = torch.ones_like(batch["attention_mask"]) if is_query else batch["attention_mask"]
            outputs += [row[mask.bool()] for row, mask in zip(vectors, keep, strict=True)]
        return outputs

    def computed_lengths(self, texts: list[str], is_query: bool) -> tuple[list[int], int]:
        """Sequence lengths the model runs on (padded), and the real tokens among them."""
        computed: list[int] = []
        useful = 0
        for batch in self.batches(texts, is_query):
            rows, length = batch["input_ids"].shape
            computed += [length] * rows
            useful += int(batch["attention_mask"].sum()) if not is_query else rows * length
        return computed, useful


def our_workloads(
    model: maxsim.ColBERT,
    documents: list[str],
    queries: list[str],
    batch_size: int,
    label: str = "ours",
) -> list[Workload]:
    parameters = non_embedding_parameters(model._backbone) + non_embedding_parameters(
        model._projection
    )
    document_lengths = [len(ids) for ids in model.tokenize(documents, is_query=False)]
    query_lengths = [len(ids) for ids in model.tokenize(queries, is_query=True)]
    shape = (2.0 * parameters, LAYERS, HIDDEN)
    return [
        Workload(
            f"{label}: `encode_documents`",
            documents,
            lambda texts: model.encode_documents(texts, batch_size, show_progress_bar=False),
            document_lengths,
            sum(document_lengths),
            *shape,
        ),
        Workload(
            f"{label}: `encode_queries`",
            queries,
            lambda texts: model.encode_queries(texts, batch_size, show_progress_bar=False),
            query_lengths,
            sum(query_lengths),
            *shape,
        ),
    ]


def baseline_workloads(
    baseline: Baseline, documents: list[str], queries: list[str]
) -> list[Workload]:
    parameters = non_embedding_parameters(baseline.model) + non_embedding_parameters(
        baseline.projection
    )
    shape = (2.0 * parameters, LAYERS, HIDDEN)
    workloads = []
    for name, texts, is_query in (
        ("baseline: padded eager XLM-R, documents", documents, False),
        ("baseline: padded eager XLM-R, queries", queries, True),
    ):
        computed, useful = baseline.computed_lengths(texts, is_query)

        def run(batch: list[str], is_query: bool = is_query) -> Any:
            return baseline.encode(batch, is_query)

        workloads.append(Workload(name, texts, run, computed, useful, *shape))
    return workloads


def time_workloads(
    workloads: list[Workload], chunk: int, warmup: int, passes: int, timer: QuietTimer
) -> tuple[list[float], MatmulRates]:
    """Seconds per workload. Workload i (ours) and i + half (the baseline) encode the same
    texts; they take turns on each chunk of `chunk` texts (one baseline batch), so that
    drift in the machine's speed hits both alike, and each chunk keeps its best of
    `passes`. Each workload is first warmed up on `warmup` texts. The matmul rate is
    sampled before and after each chunk."""
    rates = MatmulRates(timer)
    rates.sample()
    for workload in workloads:
        workload.run(workload.texts[:warmup])
    half = len(workloads) // 2
    seconds = [0.0] * len(workloads)
    for index in range(half):
        pair = (workloads[index], workloads[index + half])
        for number, start in enumerate(range(0, len(pair[0].texts), chunk)):
            best = [float("inf"), float("inf")]
            for attempt in range(passes):
                for side in (0, 1) if (number + attempt) % 2 == 0 else (1, 0):
                    texts = pair[side].texts[start : start + chunk]
                    best[side] = min(best[side], timer.time(partial(pair[side].run, texts)))
            seconds[index] += best[0]
            seconds[index + half] += best[1]
            rates.sample()
    return seconds, rates


def report(
    workloads: list[Workload],
    seconds: list[float],
    peak_gflops: float,
    comparison: str = "ours is faster by",
) -> str:
    """Rows in the order ours-documents, ours-queries, baseline-documents, baseline-queries."""
    half = len(workloads) // 2
    rows = []
    for index, (workload, elapsed) in enumerate(zip(workloads, seconds, strict=True)):
        gflops = workload.flops() / elapsed / 1e9
        ours_elapsed = seconds[index % half]
        rows.append(
            [
                workload.name,
                str(len(workload.texts)),
                f"{sum(workload.computed):,}",
                f"{workload.useful:,}",
                f"{elapsed:.1f}",
                f"{len(workload.texts) / elapsed:.2f}",
                f"{workload.useful / elapsed:,.0f}",
                f"{sum(workload.computed) / elapsed:,.0f}",
                f"{gflops:.1f} ({100 * gflops / peak_gflops:.0f}%)",
                f"{elapsed / ours_elapsed:.2f}x",
            ]
        )
    header = [
        "variant",
        "texts",
        "tokens computed",
        "real tokens",
        "seconds",
        "texts/s",
        "real tokens/s",
        "computed tokens/s",
        "GFLOP/s (of matmul rate)",
        comparison,
    ]
    return markdown_table(header, rows)


def print_int8_comparison(
    args: argparse.Namespace,
    folder: Path,
    float32: maxsim.ColBERT,
    texts: tuple[list[str], list[str]],
    timer: QuietTimer,
) -> None:
    """int8 against float32 on the same texts, taking turns chunk by chunk."""
    int8 = maxsim.ColBERT.from_pretrained(str(folder), device="cpu", quantize="int8")
    workloads = our_workloads(int8, *texts, args.batch_size, "int8")
    workloads += our_workloads(float32, *texts, args.batch_size, "float32")
    seconds, rates = time_workloads(workloads, args.batch_size, args.warmup, args.passes, timer)
    print(
        '\n### int8 against float32\n\nThe same texts; `quantize="int8"` (torchao int8 '
        "weights, dynamic int8 activations, compiled), warmed up first (the warm-up pays the "
        "compilation). FLOPs are counted as for float32.\n"
    )
    print(report(workloads, seconds, rates.best, "int8 is faster by"))
    print(f"\n{rates.summary()}")


def print_baseline_comparison(
    args: argparse.Namespace,
    folder: Path,
    model: maxsim.ColBERT,
    texts: tuple[list[str], list[str]],
    timer: QuietTimer,
) -> None:
    """Ours (float32) against the padded eager transformers baseline."""
    baseline = Baseline(AutoTokenizer.from_pretrained(folder), args.batch_size)
    workloads = our_workloads(model, *texts, args.batch_size) + baseline_workloads(baseline, *texts)
    seconds, rates = time_workloads(workloads, args.batch_size, args.warmup, args.passes, timer)
    print("\n### Ours against the padded baseline\n")
    print(report(workloads, seconds, rates.best))
    print(
        f"\nFLOPs per sequence of L tokens: L x 2 x non-embedding params + 4 L^2 hidden per "
        "layer, over the tokens each model computes (padding included for the baseline). "
        f"{rates.summary()}"
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    common.QUIET_TIMEOUT_SECONDS = args.quiet_wait
    timer = QuietTimer(attempts=args.attempts)
    with checkpoint_folder(args.checkpoint_dir) as folder:
        model = maxsim.ColBERT.from_pretrained(str(folder), device="cpu", dtype=torch.float32)
        documents = build_documents(
            model, args.data, args.documents, args.min_tokens, args.max_tokens
        )
        texts = (documents, load_queries(args.data, args.queries))
        lengths = [len(ids) for ids in model.tokenize(documents, is_query=False)]
        print(
            f"Full-size jina-colbert-v2 (random weights) on the CPU, batch size "
            f"{args.batch_size}; {len(documents)} XQuAD-R documents of {min(lengths)}-"
            f"{max(lengths)} tokens, {len(texts[1])} queries; warm-up on {args.warmup} texts, "
            f"then the two variants take turns on each chunk of {args.batch_size} texts, best "
            f"of {args.passes} pass(es) per chunk."
        )
        if not args.skip_baseline:
            print_baseline_comparison(args, folder, model, texts, timer)
        if not args.skip_int8:
            print_int8_comparison(args, folder, model, texts, timer)
    if args.cache_documents:
        print(f"\n### Rerank cache: the same {args.cache_documents} documents twice\n")
        print(rerank_twice(model, texts[1][0], documents[: args.cache_documents], timer))
    del model
    if args.cache_mib:
        print("\n### Rerank cache under a stream of distinct texts\n")
        print(stream_through_cache(args.data, args.cache_mib * 1024 * 1024, STREAM_BATCH))
    if args.quality_queries:
        print("\n### int8 quality\n")
        print(minilm_quality(args.data, args.quality_queries))
        print("\nTiny jina-colbert-v2 fixture, int8 against the golden float32 scores:\n")
        print(tiny_golden_rankings())
    print(f"\n{timer.summary()}\n{machine()}")


if __name__ == "__main__":
    main()
