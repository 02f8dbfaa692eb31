"""`vecembed serve` benchmark (issue 12): throughput under concurrent clients, idle latency, failures, memory.

One run, the real model (all-MiniLM-L6-v2) on the onnx backend, the same machine for
server and clients (they share the cores, as the issue asks):

* ``throughput`` — C concurrent clients (16, 32, 64 by default), each sending ONE short
  text per request (STS-B train sentences) over a keep-alive connection until the N texts
  are done; texts/s, as a ratio to in-process ``provider.embed_documents`` of the same N
  texts in one call (the best the provider does with them), interleaved rounds, medians.
  Target: ratio >= 0.6. Every non-200 answer is counted (target: 0 below the queue limit).
* ``idle_latency`` — one request at a time on an idle server: p50/p95, next to in-process
  ``embed_query`` of the same texts; the overhead is the difference of the p50s (target <= 2 ms).
* ``soak`` — the 32-client load for ``--soak-seconds``; the server's RSS before, during and after.

The clients are a minimal HTTP/1.1 client on asyncio streams (one process, one connection
per client), so that the client side costs as little CPU as a separate program in another
language would; the latency client is the same code. Each result is printed with the CPU
model and SIMD flags and appended as one JSON line to ``--jsonl``. Run
``python benchmarks/server.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stores import cpu_description, load_heldout_sentences  # noqa: E402

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
RATIO_TARGET = 0.6
OVERHEAD_TARGET_MS = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - not Linux


def _request(port: int, text: str, model: str = MODEL_ID) -> bytes:
    body = json.dumps({"input": text, "model": model}).encode()
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def _clients(port: int, texts: list[str], concurrency: int, deadline: float | None = None) -> dict[str, Any]:
    """``concurrency`` connections sending ``texts`` one per request (looping until ``deadline`` when given)."""
    statuses: dict[int, int] = {}
    next_index = 0

    async def client() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                if deadline is None:
                    if next_index >= len(texts):
                        return
                elif time.perf_counter() >= deadline:
                    return
                text = texts[next_index % len(texts)]
                next_index += 1
                writer.write(_request(port, text))
                status, _ = await _read_response(reader)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    done = sum(statuses.values())
    return {"seconds": elapsed, "requests": done, "failed": done - statuses.get(200, 0), "statuses": statuses}


async def _latencies(port: int, texts: list[str], provider: Any, model: str = MODEL_ID, block: int = 50,
                     ) -> tuple[list[float], list[float]]:
    """One request at a time, in blocks of ``block`` alternating with in-process ``embed_query`` of the same
    texts: (served seconds, in-process seconds). Blocks, not single requests, because ONNX Runtime's threads
    spin for a while after each run: alternating every request would have each side's spinning threads
    compete with the other side's next run on the same two cores."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    served, local = [], []
    try:
        for at in range(0, len(texts), block):
            part = texts[at:at + block]
            for text in part:
                start = time.perf_counter()
                writer.write(_request(port, text, model))
                status, _ = await _read_response(reader)
                served.append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"the idle server answered {status}")
            for text in part:
                start = time.perf_counter()
                provider.embed_query(text)
                local.append(time.perf_counter() - start)
    finally:
        writer.close()
    return served, local


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(port: int, extra: list[str], backend: tuple[str, ...] = ("--backend", "onnx", "--model", MODEL_ID),
                 ) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "vecembed", "serve", *backend,
                             "--port", str(port), "--log-level", "error", *extra])
    return wait_healthy(proc, port, 120)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, seconds: float) -> subprocess.Popen[bytes]:
    """``proc`` once ``vecembed serve`` answers 200 on ``/health``; killed, and an error, when it exits or
    ``seconds`` pass first."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vecembed serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"vecembed serve did not come up in {seconds:.0f} s")


def emit(result: dict[str, Any], jsonl: Path | None, cpu: dict[str, Any]) -> None:
    line = {**result, **cpu}
    print(json.dumps(line), flush=True)
    if jsonl is not None:
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="short texts per throughput round (default 2000)")
    parser.add_argument("--clients", default="16,32,64", help="concurrent clients, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--latency-requests", type=int, default=300, help="idle latency samples (default 300)")
    parser.add_argument("--soak-seconds", type=float, default=300.0, help="the memory soak (default 300 s)")
    parser.add_argument("--server-opt", action="append", default=[], help="extra `vecembed serve` option")
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per result here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import vecembed

    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}  SIMD: {' '.join(cpu['simd'])}  cores: {os.cpu_count()}", flush=True)
    texts = load_heldout_sentences(args.texts)
    clients = [int(c) for c in args.clients.split(",") if c]
    port = _free_port()
    provider = vecembed.load_provider("onnx", model=MODEL_ID)
    server = start_server(port, [opt for item in args.server_opt for opt in item.split()])
    common = {"model": MODEL_ID, "backend": "onnx", "texts": len(texts), "server_opts": args.server_opt}
    try:
        # warm-up both sides (sessions, allocator, connections)
        provider.embed_documents(texts[:256])
        asyncio.run(_clients(port, texts[:256], 16))

        # -- idle latency: one request at a time vs in-process embed_query, alternating blocks -------------------
        sample = texts[: args.latency_requests]
        served_lat, local_lat = asyncio.run(_latencies(port, sample, provider))
        p50_s, p95_s = _pct(served_lat, 0.5) * 1e3, _pct(served_lat, 0.95) * 1e3
        p50_l, p95_l = _pct(local_lat, 0.5) * 1e3, _pct(local_lat, 0.95) * 1e3
        emit({"bench": "server_idle_latency", **common, "requests": len(sample),
              "server_p50_ms": round(p50_s, 3), "server_p95_ms": round(p95_s, 3),
              "inprocess_p50_ms": round(p50_l, 3), "inprocess_p95_ms": round(p95_l, 3),
              "overhead_p50_ms": round(p50_s - p50_l, 3), "target_overhead_ms": OVERHEAD_TARGET_MS,
              "meets_target": p50_s - p50_l <= OVERHEAD_TARGET_MS}, args.jsonl, cpu)

        # -- the same with the mock backend (microseconds a text): what HTTP, JSON and the batcher add ----------
        mock_port = _free_port()
        mock_server = start_server(mock_port, [], ("--backend", "mock"))
        try:
            with vecembed.load_provider("mock") as mock:
                asyncio.run(_latencies(mock_port, sample[:50], mock, "vecembed/mock"))  # warm-up
                served_mock, local_mock = asyncio.run(_latencies(mock_port, sample, mock, "vecembed/mock"))
        finally:
            mock_server.send_signal(signal.SIGTERM)
            mock_server.wait(timeout=60)
        p50_sm, p50_lm = _pct(served_mock, 0.5) * 1e3, _pct(local_mock, 0.5) * 1e3
        emit({"bench": "server_transport_overhead", **common, "backend": "mock", "requests": len(sample),
              "server_p50_ms": round(p50_sm, 3), "server_p95_ms": round(_pct(served_mock, 0.95) * 1e3, 3),
              "inprocess_p50_ms": round(p50_lm, 3), "overhead_p50_ms": round(p50_sm - p50_lm, 3),
              "target_overhead_ms": OVERHEAD_TARGET_MS, "meets_target": p50_sm - p50_lm <= OVERHEAD_TARGET_MS},
             args.jsonl, cpu)

        # -- throughput: interleaved rounds --------------------------------------------------------------------
        local_rates: list[float] = []
        served: dict[int, list[dict[str, Any]]] = {c: [] for c in clients}
        for _ in range(args.repeats if clients else 0):
            start = time.perf_counter()
            provider.embed_documents(texts)
            local_rates.append(len(texts) / (time.perf_counter() - start))
            for c in clients:
                served[c].append(asyncio.run(_clients(port, texts, c)))
        local = statistics.median(local_rates) if local_rates else 0.0
        for c in clients:
            rates = [r["requests"] / r["seconds"] for r in served[c]]
            rate = statistics.median(rates)
            emit({"bench": "server_throughput", **common, "clients": c, "repeats": args.repeats,
                  "server_texts_per_s": round(rate, 1), "inprocess_texts_per_s": round(local, 1),
                  "ratio": round(rate / local, 3), "target_ratio": RATIO_TARGET,
                  "meets_target": rate / local >= RATIO_TARGET,
                  "failed_requests": sum(r["failed"] for r in served[c]),
                  "requests": sum(r["requests"] for r in served[c])}, args.jsonl, cpu)

        # -- soak: memory under a sustained load ------------------------------------------------------------------
        if args.soak_seconds > 0:
            before = _rss_mb(server.pid)
            marks: list[float] = []
            soak_start = time.perf_counter()
            totals = {"requests": 0, "failed": 0}
            slices = max(1, int(args.soak_seconds // 30))
            for i in range(slices):
                end = soak_start + args.soak_seconds * (i + 1) / slices
                result = asyncio.run(_clients(port, texts, 32, deadline=end))
                totals["requests"] += result["requests"]
                totals["failed"] += result["failed"]
                marks.append(round(_rss_mb(server.pid), 1))
            after = _rss_mb(server.pid)
            emit({"bench": "server_soak", **common, "clients": 32, "seconds": round(time.perf_counter() - soak_start),
                  "requests": totals["requests"], "failed_requests": totals["failed"],
                  "rss_before_mb": round(before, 1), "rss_marks_mb": marks, "rss_after_mb": round(after, 1),
                  "rss_growth_mb": round(after - before, 1)}, args.jsonl, cpu)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        provider.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
