"""`maxsim serve`: the command that starts the Jina-compatible API on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from typing import Any

from maxsim.encoder import DEFAULT_MODEL, MODEL_DTYPES, ColBERT
from maxsim.quantization import QUANTIZATIONS

API_KEY_VARIABLE = "MAXSIM_API_KEY"

logger = logging.getLogger("maxsim")


def add_serve(commands: Any, positive_int: Any) -> None:
    """Register `serve` on the `maxsim` command's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="serve the Jina multi-vector and rerank API",
        description="Serve /v1/multi-vector, /v1/rerank, /v1/models and /health (OpenAPI "
        "docs at /docs) for one model. Needs: pip install 'maxsim[server]'.",
    )
    serve.add_argument("--model", default=DEFAULT_MODEL, help="repo id or checkpoint folder")
    serve.add_argument(
        "--served-model-name",
        help="the name requests give as 'model' (default: --model and its last path part)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=positive_int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_VARIABLE),
        help=f"bearer token /v1/ requires (default: ${API_KEY_VARIABLE}; none: open)",
    )
    serve.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    serve.add_argument("--dtype", choices=sorted(MODEL_DTYPES), help="model dtype")
    serve.add_argument("--dim", type=positive_int, help="Matryoshka cut of the model's output")
    serve.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="int8 linear layers on the CPU (needs maxsim[int8]; the first requests wait "
        "for a one-off compilation)",
    )
    serve.add_argument(
        "--max-inputs", type=positive_int, default=2048, help="texts per request (413 beyond)"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=32 * 2**20,
        help="request body size (413 beyond; default 32 MiB)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from ORIGIN (repeatable; default: no CORS)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(arguments: argparse.Namespace) -> int:
    """Load the model, then serve until interrupted."""
    try:
        import uvicorn

        from maxsim.server import ServerSettings, create_app
    except ImportError as error:
        raise ValueError(
            f"maxsim serve needs the server extra ({error.name} is missing): "
            "pip install 'maxsim[server]'"
        ) from error
    try:
        model = ColBERT.from_pretrained(
            arguments.model,
            dim=arguments.dim,
            device=arguments.device,
            dtype=arguments.dtype,
            quantize=arguments.quantize,
        )
    except (OSError, ValueError, ImportError) as error:
        raise ValueError(f"cannot load model {arguments.model!r}: {error}") from error
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = ServerSettings(
        served_model_name=arguments.served_model_name,
        api_key=arguments.api_key or None,
        max_inputs=arguments.max_inputs,
        max_body_bytes=arguments.max_body_bytes,
        cors_origins=tuple(arguments.cors_origin),
    )
    if settings.api_key is None and not _is_loopback(arguments.host):
        logger.warning(
            "serving on %s without an API key: anyone who reaches it can use the model; "
            "pass --api-key or set %s",
            arguments.host,
            API_KEY_VARIABLE,
        )
    uvicorn.run(create_app(model, settings), host=arguments.host, port=arguments.port)
    return 0


def _is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
