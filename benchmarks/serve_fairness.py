"""`vecembed serve` under one big request and under a /health flood (issue 22, items 2 and 3). Not a test.

Two measurements, the real model (all-MiniLM-L6-v2, onnx backend), server and clients
on this machine (they share its cores), 127.0.0.1 only, every loop bounded in time:

* ``fairness`` — one request of ``--texts`` (2,048) SciFact abstracts cut to ``--chars``
  (~300 tokens each; the model truncates at 256) and, from 1 s after it, ``--small-clients``
  clients each sending one-word requests one after another (a short pause between) until
  the big request is answered: the small requests' p50 / p99 / max next to the "batch
  time" (one call of ``max_batch_texts`` / ``max_batch_tokens`` worth of those abstracts,
  alone on the idle server), and the big request's own time.
* ``health`` — authorised one-sentence requests one at a time, on the idle server and
  while ``--flood-clients`` (32) clients flood ``GET /health`` without a key (from a
  separate process, so the flood does not stall the measuring client's own loop): p50 /
  p99 and the ratio flood / idle. Target: p99 ratio <= 2.

``--repo DIR`` runs the server from another checkout (e.g. ``--repo /work/main`` for
the code before a change): the server process gets ``PYTHONPATH=DIR:DIR/adapters``. The
clients are the minimal asyncio HTTP/1.1 client of ``benchmarks/server.py``. Each result
is printed as one JSON line with the CPU model and SIMD flags (``--jsonl`` appends it
to a file)::

    python benchmarks/serve_fairness.py                          # both parts, this checkout
    python benchmarks/serve_fairness.py --repo /work/main --label before
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server import _free_port, _pct, _read_response, emit, wait_healthy  # noqa: E402
from benchmarks.stores import cpu_description  # noqa: E402

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = Path("/work/shared/data/scifact-train/corpus.jsonl")
KEY = "bench-key"
P99_RATIO_TARGET = 2.0
#: No single wait in this script outlasts this (seconds): a stuck server ends the run, it does not hang it.
HARD_TIMEOUT = 900.0


def long_texts(n: int, chars: int) -> list[str]:
    """``n`` SciFact abstracts (title + text) of at least ``chars`` characters, cut to ``chars`` (~300 tokens)."""
    out: list[str] = []
    with open(CORPUS, encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc.get('text', '')}".strip()
            if len(text) >= chars:
                out.append(text[:chars])
            if len(out) == n:
                return out
    while len(out) < n:  # a shorter corpus: repeat it (distinct texts are not needed for timing)
        out.append(out[len(out) % max(1, len(out))])
    return out


def _post(port: int, body: dict[str, Any], key: str | None = None) -> bytes:
    raw = json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw


def _get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def _call(port: int, payload: bytes) -> tuple[int, float]:
    """One request on a new connection: (status, seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**26)
    try:
        start = time.perf_counter()
        writer.write(payload)
        status, _ = await asyncio.wait_for(_read_response(reader), HARD_TIMEOUT)
        return status, time.perf_counter() - start
    finally:
        writer.close()


async def _sequential(port: int, payloads: list[bytes], deadline: float, pause: float = 0.0,
                      stop: asyncio.Event | None = None) -> list[tuple[int, float]]:
    """``payloads`` one at a time on one keep-alive connection, until done, ``deadline`` or ``stop``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out: list[tuple[int, float]] = []
    try:
        for payload in payloads:
            if time.perf_counter() >= deadline or (stop is not None and stop.is_set()):
                break
            start = time.perf_counter()
            writer.write(payload)
            status, _ = await asyncio.wait_for(_read_response(reader), HARD_TIMEOUT)
            out.append((status, time.perf_counter() - start))
            if pause:
                await asyncio.sleep(pause)
    finally:
        writer.close()
    return out


def start_server(repo: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{repo}:{repo / 'adapters'}", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "vecembed", "serve", "--backend", "onnx", "--model", MODEL_ID,
                             "--port", str(port), "--log-level", "error", *extra], env=env, cwd=repo)
    return wait_healthy(proc, port, 180)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _summary(samples: list[tuple[int, float]], prefix: str) -> dict[str, Any]:
    seconds = [s for status, s in samples if status == 200]
    failed = sum(1 for status, _ in samples if status != 200)
    if not seconds:
        return {f"{prefix}_requests": len(samples), f"{prefix}_failed": failed}
    return {f"{prefix}_requests": len(samples), f"{prefix}_failed": failed,
            f"{prefix}_p50_ms": round(_pct(seconds, 0.5) * 1e3, 1),
            f"{prefix}_p99_ms": round(_pct(seconds, 0.99) * 1e3, 1),
            f"{prefix}_max_ms": round(max(seconds) * 1e3, 1)}


# -- fairness ----------------------------------------------------------------------------------------------------


async def _fairness(port: int, texts: list[str], chunk: int, small_clients: int) -> dict[str, Any]:
    one_word = [_post(port, {"input": "hello", "model": MODEL_ID})] * 100_000
    # idle references: a one-word request, and one call's worth of the big request's texts (the batch time)
    idle = await _sequential(port, one_word[:30], time.perf_counter() + 120)
    batch = [await _call(port, _post(port, {"input": texts[:chunk], "model": MODEL_ID})) for _ in range(3)]
    batch_seconds = sorted(s for _, s in batch)[1]

    big_payload = _post(port, {"input": texts, "model": MODEL_ID, "encoding_format": "base64"})
    big_task = asyncio.ensure_future(_call(port, big_payload))
    await asyncio.sleep(1.0)
    stop = asyncio.Event()
    big_task.add_done_callback(lambda _: stop.set())
    deadline = time.perf_counter() + HARD_TIMEOUT
    small = await asyncio.gather(*(_sequential(port, one_word, deadline, pause=0.2, stop=stop)
                                   for _ in range(small_clients)))
    big_status, big_seconds = await big_task
    samples = [s for client in small for s in client]
    result = {"big_status": big_status, "big_seconds": round(big_seconds, 2),
              "batch_seconds": round(batch_seconds, 3), **_summary(idle, "idle_small"),
              **_summary(samples, "small_during_big")}
    if "small_during_big_p99_ms" in result:
        result["small_p99_in_batch_times"] = round(result["small_during_big_p99_ms"] / 1e3 / batch_seconds, 2)
    return result


# -- health flood --------------------------------------------------------------------------------------------------


async def _flood(port: int, clients: int, seconds: float) -> dict[int, int]:
    deadline = time.perf_counter() + seconds
    statuses: dict[int, int] = {}

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                writer.write(_get(port, "/health"))
                status, _ = await asyncio.wait_for(_read_response(reader), HARD_TIMEOUT)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)), return_exceptions=True)
    return statuses


def _flood_worker(port: int, clients: int, seconds: float) -> None:
    """The flood in its own process (``--flood-worker``): prints its status counts as one JSON line."""
    statuses = asyncio.run(_flood(port, clients, seconds))
    print(json.dumps({str(k): v for k, v in statuses.items()}), flush=True)


def _health(port: int, requests: int, flood_clients: int, flood_seconds: float) -> dict[str, Any]:
    payloads = [_post(port, {"input": "A man is playing a guitar.", "model": MODEL_ID}, KEY)] * requests
    asyncio.run(_sequential(port, payloads[:20], time.perf_counter() + 60))  # warm-up
    idle = asyncio.run(_sequential(port, payloads, time.perf_counter() + flood_seconds))
    flood = subprocess.Popen([sys.executable, __file__, "--flood-worker", str(port), str(flood_clients),
                              str(flood_seconds + 5)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the flood is under way
        loaded = asyncio.run(_sequential(port, payloads, time.perf_counter() + flood_seconds))
        out, _ = flood.communicate(timeout=HARD_TIMEOUT)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    statuses = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    result = {**_summary(idle, "idle"), **_summary(loaded, "flood"), "flood_clients": flood_clients,
              "flood_health_requests": sum(statuses.values()), "flood_statuses": statuses}
    if "idle_p99_ms" in result and "flood_p99_ms" in result:
        ratio = result["flood_p99_ms"] / result["idle_p99_ms"]
        result.update(p99_ratio=round(ratio, 2), target_ratio=P99_RATIO_TARGET, meets_target=ratio <= P99_RATIO_TARGET)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--flood-worker"]:
        _flood_worker(int(argv[1]), int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="fairness,health", help="fairness, health or both (comma-separated)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout the server runs from (default: this)")
    parser.add_argument("--label", default="", help="a label for the result lines (e.g. before / after)")
    parser.add_argument("--texts", type=int, default=2048, help="texts in the big request (default 2048)")
    parser.add_argument("--chars", type=int, default=1300, help="characters per big-request text (~300 tokens)")
    parser.add_argument("--chunk", type=int, default=32,
                        help="texts in one call of the server's budget, for the batch time (default 32: "
                        "8192 tokens / 256)")
    parser.add_argument("--small-clients", type=int, default=2, help="clients sending one-word requests (default 2)")
    parser.add_argument("--requests", type=int, default=200, help="authorised requests per health phase (default 200)")
    parser.add_argument("--flood-clients", type=int, default=32, help="clients flooding /health (default 32)")
    parser.add_argument("--flood-seconds", type=float, default=30.0, help="most seconds per health phase")
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per result here")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.part.split(",") if p.strip()}
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}  SIMD: {' '.join(cpu['simd'])}  cores: {os.cpu_count()}", flush=True)
    repo = args.repo.resolve()
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    common = {"model": MODEL_ID, "backend": "onnx", "repo": str(repo), "commit": commit, "label": args.label}
    if "fairness" in parts:
        texts = long_texts(args.texts, args.chars)
        port = _free_port()
        server = start_server(repo, port, [])
        try:
            result = asyncio.run(_fairness(port, texts, args.chunk, args.small_clients))
        finally:
            stop_server(server)
        emit({"bench": "serve_fairness", **common, "texts": len(texts), "chars": args.chars, **result}, args.jsonl, cpu)
    if "health" in parts:
        port = _free_port()
        server = start_server(repo, port, ["--api-key", KEY])
        try:
            result = _health(port, args.requests, args.flood_clients, args.flood_seconds)
        finally:
            stop_server(server)
        emit({"bench": "serve_health_flood", **common, **result}, args.jsonl, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
