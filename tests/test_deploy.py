"""The Dockerfile and docker-compose.yml agree with the command line (no Docker engine runs here)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from screening.cli import app

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def _parse(args: list[str]):
    """Parse a command line exactly as the CLI would, without running it."""
    group = get_command(app)
    name, *rest = args
    command = group.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None, f"unknown command {name}"
    return command.make_context(name, list(rest))


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_compose_services_are_valid_commands_sharing_one_database():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    job, api = services["screening-job"]["command"], services["api"]["command"]
    assert job[0] == "run" and api[0] == "serve"
    job_ctx, api_ctx = _parse(job), _parse(api)
    assert job_ctx.params["db"] == api_ctx.params["db"] == Path("/db/screening.duckdb")
    db_dir = str(Path(_option(job, "--db")).parent)
    for service in (services["screening-job"], services["api"]):
        mounts = dict(v.split(":")[::-1] for v in service["volumes"])
        assert mounts[db_dir] == "db", "the database must live on the shared named volume"
    assert set(compose["volumes"]) >= {"db", "out"}
    # DuckDB: one process per file, so the API waits for the job to finish
    assert services["api"]["depends_on"]["screening-job"]["condition"] == "service_completed_successfully"
    port = _option(api, "--port")
    assert any(p.endswith(f":{port}") for p in services["api"]["ports"])
    assert _option(api, "--host") == "0.0.0.0"


def test_dockerfile_installs_the_project_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for folder in ("screening", "api", "rules", "sql", "sample_data"):
        assert f"COPY {folder} ./{folder}" in text
    assert "pip install --no-cache-dir ." in text
    assert 'ENTRYPOINT ["screening"]' in text
    cmd = yaml.safe_load(text.split("CMD", 1)[1].strip().splitlines()[0])
    assert _parse(cmd).params["db"] == Path("/db/screening.duckdb")
