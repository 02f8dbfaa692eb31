"""docker/compose.yaml and docker/Dockerfile, checked by reading them (no Docker engine runs here).

What is checked: pinned image tags that match the clients vecembed is tested
with, health checks, ports bound to 127.0.0.1 only, named volumes, and a
vecembed image whose runtime stage has no torch and carries the exported ONNX
graphs. ``docker compose config`` / ``docker-compose config`` validate the
compose file too where either is installed (client-side; no engine needed).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML parses the compose file")

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
TAG = re.compile(r"^(?P<repo>[\w./-]+):v?(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _version(dist: str) -> tuple[int, int]:
    major, minor = importlib.metadata.version(dist).split(".")[:2]
    return int(major), int(minor)


def test_images_are_pinned_to_the_tested_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    chroma = TAG.match(services["chroma"]["image"])
    qdrant = TAG.match(services["qdrant"]["image"])
    assert chroma and chroma["repo"] == "chromadb/chroma", services["chroma"]["image"]
    assert qdrant and qdrant["repo"] == "qdrant/qdrant", services["qdrant"]["image"]
    # the server matches the chromadb client's minor version (the HTTP API moves between minors)
    assert (int(chroma["major"]), int(chroma["minor"])) == _version("chromadb")
    # collection metadata, which records the model, needs Qdrant >= 1.16
    assert (int(qdrant["major"]), int(qdrant["minor"])) >= (1, 16)


def test_compose_images_match_the_test_fixtures(compose: dict[str, Any]) -> None:
    # the servers a developer starts with compose are the ones testcontainers would start
    integration = Path(__file__).resolve().parents[1] / "integration"
    conftest = (integration / "conftest.py").read_text(encoding="utf-8")
    assert f'"{compose["services"]["chroma"]["image"]}"' in conftest
    qdrant_fixtures = integration / "qdrant_fixtures.py"
    if qdrant_fixtures.is_file():
        assert f'"{compose["services"]["qdrant"]["image"]}"' in qdrant_fixtures.read_text(encoding="utf-8")


@pytest.mark.parametrize(("service", "port"), [("chroma", 8000), ("qdrant", 6333)])
def test_health_checks_probe_the_real_endpoint(compose: dict[str, Any], service: str, port: int) -> None:
    check = compose["services"][service]["healthcheck"]
    command = " ".join(check["test"])
    assert check["test"][0] == "CMD"
    assert f"/dev/tcp/127.0.0.1/{port}" in command
    assert ("/api/v2/heartbeat" if service == "chroma" else "/readyz") in command
    assert check["retries"] >= 3 and check["interval"] and check["timeout"]


def test_pgvector_service_is_pinned_and_probed_over_tcp(compose: dict[str, Any]) -> None:
    service = compose["services"]["pgvector"]
    # pgvector >= 0.8: iterative index scans, which the store's filtered searches rely on
    match = re.fullmatch(r"pgvector/pgvector:(\d+)\.(\d+)\.(\d+)-pg(\d+)", service["image"])
    assert match and (int(match[1]), int(match[2])) >= (0, 8), service["image"]
    check = service["healthcheck"]
    # -h 127.0.0.1: the entrypoint's init server listens on the socket only, so TCP means the real one is up
    assert check["test"][:2] == ["CMD", "pg_isready"] and "127.0.0.1" in check["test"]
    assert check["retries"] >= 3 and check["interval"] and check["timeout"]


def test_ports_are_bound_to_localhost_only(compose: dict[str, Any]) -> None:
    seen = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
            seen += 1
    assert seen == 5  # chroma HTTP, qdrant HTTP + gRPC, PostgreSQL, vecembed serve


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["chroma"]["volumes"] == ["chroma-data:/data"]
    assert services["qdrant"]["volumes"] == ["qdrant-data:/qdrant/storage"]
    assert services["pgvector"]["volumes"] == ["pgvector-data:/var/lib/postgresql/data"]
    assert set(compose["volumes"]) == {"chroma-data", "qdrant-data", "pgvector-data"}


def test_vecembed_service_waits_for_healthy_servers(compose: dict[str, Any]) -> None:
    service = compose["services"]["vecembed"]
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    assert service["profiles"] == ["cli"]
    assert {name: d["condition"] for name, d in service["depends_on"].items()} == {
        "chroma": "service_healthy", "qdrant": "service_healthy", "pgvector": "service_healthy"}
    assert service["environment"]["VECEMBED_CHROMA_URL"] == "http://chroma:8000"
    assert service["environment"]["VECEMBED_QDRANT_URL"] == "http://qdrant:6333"
    assert service["environment"]["VECEMBED_PGVECTOR_URL"].endswith("@pgvector:5432/vecembed")


def test_server_service_serves_on_its_port_and_drains_before_it_is_killed(compose: dict[str, Any]) -> None:
    service = compose["services"]["server"]
    assert service["build"]["dockerfile"] == "docker/Dockerfile" and service["profiles"] == ["server"]
    command = service["command"]
    assert command[0] == "serve" and command[command.index("--port") + 1] == "8080"
    assert service["ports"] == ["127.0.0.1:${VECEMBED_SERVER_PORT:-8080}:8080"]
    # docker stop waits longer than the server's own drain, so in-flight requests finish
    drain = float(command[command.index("--drain-timeout") + 1])
    assert service["stop_signal"] == "SIGTERM" and float(service["stop_grace_period"].rstrip("s")) > drain
    probe = " ".join(service["healthcheck"]["test"])
    assert "127.0.0.1:8080/health" in probe and service["healthcheck"]["retries"] >= 3
    assert "${VECEMBED_API_KEY" in service["environment"]["VECEMBED_API_KEY"]


def test_compose_config_validates_where_a_compose_tool_exists() -> None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                  check=False).returncode == 0:
        command = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        command = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    proc = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


# -- the Dockerfile -------------------------------------------------------------------------------


def _stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            instructions.append(current.strip())
            current = ""
    stages: dict[str, list[str]] = {}
    name = "_preamble"
    for instruction in instructions:
        match = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", instruction, re.IGNORECASE)
        if match:
            name = match[1]
        stages.setdefault(name, []).append(instruction)
    return stages


def test_dockerfile_exports_in_the_builder_and_runs_without_torch() -> None:
    stages = _stages()
    assert list(stages) == ["_preamble", "builder", "runtime"]
    builder = " ".join(stages["builder"])
    runtime = " ".join(stages["runtime"])
    # the export happens at build time, with torch, into the cache the runtime stage copies
    assert "vecembed export --int8" in builder and "VECEMBED_CACHE=/opt/vecembed-cache" in builder
    assert "COPY --from=builder /opt/vecembed-cache /opt/vecembed-cache" in runtime
    assert "VECEMBED_CACHE=/opt/vecembed-cache" in runtime
    # the runtime venv is installed without the torch extra, and the build checks torch is absent
    runtime_install = next(i for i in stages["builder"] if "/opt/vecembed/bin/pip install" in i)
    assert "torch" not in runtime_install and "onnx" in runtime_install and "minilm" in runtime_install
    assert "find_spec('torch') is not None" in runtime
    assert "torch" not in runtime.replace("find_spec('torch')", "")
    assert "VECEMBED_OFFLINE=1" in runtime and "HF_HUB_OFFLINE=1" in runtime
    assert 'ENTRYPOINT ["vecembed"]' in runtime and 'CMD ["demo"]' in runtime
    # the image serves too: the server extras are installed and checked at build time
    assert "server" in runtime_install and "remote" in runtime_install
    assert "vecembed serve --help" in runtime and "EXPOSE 8080" in runtime
    assert any(i.startswith("USER ") and "root" not in i for i in stages["runtime"])


def test_dockerfile_base_image_is_pinned() -> None:
    preamble = " ".join(_stages()["_preamble"])
    match = re.search(r"ARG PYTHON_IMAGE=(\S+)", preamble)
    assert match and re.fullmatch(r"python:3\.\d+-slim-\w+", match[1])
