"""Model commands: ``info``, ``embed``, ``export``, ``distill``, ``bench``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vecembed._deps import require
from vecembed.cli._common import EXIT_UNHEALTHY, CliError, add_provider_options, echo, open_provider
from vecembed.cli.inputs import read_texts
from vecembed.cli.retrieval import add_retrieval_options, cmd_retrieval
from vecembed.cpu import REPORTED_FLAGS, onednn_cpu_info
from vecembed.progress import Progress

__all__ = ["find_benchmarks", "register"]

#: Texts per provider call in ``embed``: small enough for a lively progress bar, large enough to batch well.
EMBED_CHUNK = 256


def register(commands: Any) -> None:
    """Add this module's sub-commands to the CLI."""
    info = commands.add_parser("info", help="show the model's info and run a health check")
    add_provider_options(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=cmd_info)

    embed = commands.add_parser("embed", help="embed texts from a file or stdin")
    embed.add_argument("input", help=".txt (one text a line), .jsonl ({\"text\": ...}), a folder, or - for stdin")
    embed.add_argument("--out", "-o", help="vectors.npy (float32 array) or .jsonl; default: JSON lines on stdout")
    embed.add_argument("--queries", action="store_true", help="embed as queries (with the model's query prompt)")
    add_provider_options(embed)
    embed.set_defaults(handler=cmd_embed)

    export = commands.add_parser("export", help="export a model to ONNX (cached) for the onnx backend, "
                                 "or convert it to GGUF for the gguf backend")
    export.add_argument("--model", "-m", default=None, help="model to export (default: all-MiniLM-L6-v2)")
    export.add_argument("--int8", action="store_true", help="also write the int8 dynamically quantised model")
    export.add_argument("--format", choices=("onnx", "gguf"), default="onnx",
                        help="onnx (default) or gguf (llama.cpp; a BERT model)")
    export.add_argument("--quantize", choices=("f32", "f16", "q8_0"), default=None,
                        help="GGUF type: f16 (default), q8_0 or f32 (--format gguf only)")
    export.add_argument("--out", "-o", default=None, help="also copy the GGUF file here (--format gguf only; "
                        "it is always cached)")
    export.set_defaults(handler=cmd_export)

    distill = commands.add_parser("distill", help="distill a transformer into static embeddings (model2vec)")
    distill.add_argument("--model", "-m", default=None, help="model to distill (default: all-MiniLM-L6-v2)")
    distill.add_argument("--dim", type=int, default=256, help="output dimension (PCA), default 256")
    distill.add_argument("--out", "-o", default=None, help="also copy the model to this new folder "
                         "(it is always cached)")
    distill.set_defaults(handler=cmd_distill)

    bench = commands.add_parser("bench", help="run the benchmark harness (from a source checkout), or measure "
                                "retrieval quality per search mode over a BEIR folder (--retrieval)",
                                epilog="Other options are passed to benchmarks/run.py, e.g. --backends onnx.")
    bench.add_argument("--quick", action="store_true",
                       help="a smaller run (a few minutes on 2 cores: it times sentence-transformers too)")
    add_provider_options(bench)
    add_retrieval_options(bench)
    # Any other option goes to the harness as is (e.g. --backends onnx, --json out.json): see main().
    bench.set_defaults(handler=cmd_bench, passthrough=True, rest=[])


# -- info -------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    """Model info and a health check; exit 3 when the health check fails."""
    start = time.perf_counter()
    with open_provider(args) as provider:
        load_s = time.perf_counter() - start
        info = provider.info
        health = provider.health_check()
    cpu = onednn_cpu_info()
    if args.json:
        echo(json.dumps({"info": info.to_dict(), "health": health.to_dict(), "load_seconds": round(load_s, 3),
                         "cpu": {"model": cpu.model, "isa": cpu.isa, "int8_dot_product": cpu.int8_dot_product,
                                 "flags": sorted(cpu.flags & set(REPORTED_FLAGS)), "source": cpu.source}},
                        indent=2, default=str))
    else:
        rows = [
            ("model", info.name),
            ("backend", f"{info.backend} on {info.device} ({info.dtype})"),
            ("dimension", str(info.dimension)),
            ("max tokens", str(info.max_tokens)),
            ("pooling", f"{info.pooling}, {'L2-normalised' if info.normalized else 'not normalised'}"),
            ("quantization", info.quantization or "none"),
            ("fingerprint", info.fingerprint),
        ]
        if info.query_prompt:
            rows.append(("query prompt", repr(info.query_prompt)))
        if info.agreement is not None:
            rows.append(("agreement", f"{info.agreement:.4f} (min cosine vs. unquantised)"))
        source = info.extra.get("source")
        if source:
            rows.append(("source", f"{source}: {info.extra.get('path', '')}"))
        rows.append(("cpu", cpu.summary))
        rows.append(("loaded in", f"{load_s:.2f} s"))
        verdict = "ok" if health.ok else "FAILED"
        rows.append(("health", f"{verdict} in {health.latency_ms:.1f} ms: {health.detail}"))
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            echo(f"{key:<{width}}  {value}")
    return 0 if health.ok else EXIT_UNHEALTHY


# -- embed ------------------------------------------------------------------------------------


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed every text of the input; write .npy, .jsonl, or JSON lines to stdout."""
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in {".npy", ".jsonl"}:
        raise CliError(f"--out must end in .npy or .jsonl, got {out.name!r}")
    texts = read_texts(args.input)
    start = time.perf_counter()
    with open_provider(args) as provider:
        embed = provider.embed_queries if args.queries else provider.embed_documents
        parts = []
        with Progress("embedding", len(texts), enabled=None) as bar:
            for first in range(0, len(texts), EMBED_CHUNK):
                chunk = texts[first : first + EMBED_CHUNK]
                parts.append(embed(chunk))
                bar.advance(len(chunk))
        dim = provider.info.dimension
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    seconds = time.perf_counter() - start
    if out is None:
        _write_jsonl(sys.stdout, texts, vectors)
    elif out.suffix.lower() == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, vectors)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            _write_jsonl(fh, texts, vectors)
    where = f" -> {out}" if out is not None else ""
    noun = "text" if len(texts) == 1 else "texts"
    echo(f"embedded {len(texts)} {noun}, dimension {vectors.shape[1]}, in {seconds:.2f} s{where}", err=True)
    return 0


def _write_jsonl(stream: Any, texts: list[str], vectors: np.ndarray[Any, Any]) -> None:
    for text, vector in zip(texts, vectors, strict=True):
        stream.write(json.dumps({"text": text, "embedding": [round(float(x), 7) for x in vector]},
                                ensure_ascii=False) + "\n")


# -- export / distill -------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """Export the model to ONNX (and int8) into vecembed's cache, as the onnx backend does on first use.

    Both call :func:`~vecembed.providers.onnx_build.ensure_onnx_graph`: it builds the
    graph once, checks it against the torch forward and caches it; later loads (any
    process) reuse it. A model that ships its own ``model.onnx`` is used as is.
    """
    from vecembed.model_config import load_model_config
    from vecembed.resolve import resolve_model

    if args.format == "gguf":
        return _export_gguf(args)
    if args.quantize is not None or args.out is not None:
        raise CliError("--quantize and --out go with --format gguf (the ONNX export takes --int8)")
    from vecembed.providers.onnx_build import ensure_onnx_graph

    require("onnxruntime", "onnx", "the onnx backend")  # fail before a long export, as loading the backend did
    resolved = resolve_model(args.model)
    config = load_model_config(resolved.path)
    variants: list[str | None] = [None, "int8"] if args.int8 else [None]
    for quantize in variants:
        start = time.perf_counter()
        graph = ensure_onnx_graph(config, quantize=quantize, name=resolved.name)
        agreement = f", agreement {graph.agreement:.4f}" if graph.agreement is not None else ""
        echo(f"{resolved.name} ({graph.quantization or 'fp32'}{agreement}): {graph.path}")
        echo(f"ready in {time.perf_counter() - start:.1f} s (cached: later loads reuse it)", err=True)
    return 0


def _export_gguf(args: argparse.Namespace) -> int:
    """``export --format gguf``: the file ``load_provider("gguf", quantize=...)`` converts to and caches."""
    import shutil

    from vecembed.model_config import load_model_config
    from vecembed.providers.gguf_convert import ensure_gguf
    from vecembed.resolve import resolve_model

    if args.int8:
        raise CliError("--int8 is the ONNX export's; for GGUF pass --quantize q8_0")
    require("gguf", "gguf", "converting a model to GGUF")
    start = time.perf_counter()
    resolved = resolve_model(args.model)
    quantize = args.quantize or "f16"
    path = ensure_gguf(load_model_config(resolved.path), quantize, name=resolved.name)
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            out = out / f"{resolved.name.rsplit('/', 1)[-1]}-{quantize}.gguf"
        if out.exists():
            raise CliError(f"--out {out} exists; choose a new file name")
        shutil.copyfile(path, out)
        path = out.resolve()
    echo(str(path))
    echo(f"GGUF {quantize.upper()} ready in {time.perf_counter() - start:.1f} s; use it with: "
         f"vecembed info --backend gguf --model {path}", err=True)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Distill a static (model2vec) model from a transformer, offline, into the cache (and ``--out``)."""
    import shutil

    import vecembed

    if args.dim <= 0:
        raise CliError(f"--dim must be positive, got {args.dim}")
    start = time.perf_counter()
    folder = Path(vecembed.distill(args.model, dim=args.dim, show_progress=None))  # bars on a terminal only
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            raise CliError(f"--out {out} exists and is not empty; choose a new folder")
        shutil.copytree(folder, out, dirs_exist_ok=True)
        folder = out
    echo(str(folder))
    echo(f"static model ready in {time.perf_counter() - start:.1f} s; use it with: "
         f"vecembed info --backend static --model {folder}", err=True)
    return 0


# -- bench ------------------------------------------------------------------------------------


def find_benchmarks() -> Path | None:
    """``benchmarks/run.py`` of the source checkout this very package was loaded from, or None.

    Never the working directory, nor any folder above an installed package: ``vecembed bench`` run in a folder
    someone else controls must not execute its files. A checkout is recognised by its ``pyproject.toml`` naming
    the ``vecembed`` project beside the ``vecembed/`` package that is running.
    """
    package = Path(__file__).resolve().parents[1]
    root = package.parent
    pyproject = root / "pyproject.toml"
    script = root / "benchmarks" / "run.py"
    try:
        ours = pyproject.is_file() and 'name = "vecembed"' in pyproject.read_text(encoding="utf-8")
    except OSError:
        ours = False
    return script if ours and script.is_file() else None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks/run.py``'s ``main(argv)`` (the harness is not part of the wheel), or the retrieval mode."""
    if args.retrieval is not None:
        if args.rest:
            raise CliError(f"vecembed bench --retrieval: unrecognized arguments: {' '.join(args.rest)}")
        return cmd_retrieval(args)
    script = find_benchmarks()
    if script is None:
        raise CliError("the benchmark harness (benchmarks/run.py) is not installed with the package: "
                       "run `vecembed bench` from a clone of the vecembed repository")
    spec = importlib.util.spec_from_file_location("vecembed_benchmarks_run", script)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise CliError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    # The harness imports its sibling modules (benchmarks.*) from the checkout root.
    root = str(script.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    # --json and --model are the harness's too: the bench parser (which knows them for --retrieval) hands them on.
    forwarded = [*(["--json", args.json_out] if args.json_out else [])]
    forwarded += ["--model", args.model] if args.model else []
    argv = (["--quick"] if args.quick else []) + [a for a in args.rest if a != "--"] + forwarded
    code = module.main(argv)
    return int(code or 0)
