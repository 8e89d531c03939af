"""The production image and compose.yaml, checked without a container engine: hadolint
on the Dockerfile, the Compose specification (compose-spec's parser) on compose.yaml."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not installed: pip install -r requirements-dev.txt")
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "no USER instruction"
    assert users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD", text, re.M)


def compose() -> dict:
    # PyYAML resolves the anchors and merge keys as Compose does.
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_file_follows_the_compose_specification():
    PyCompose.from_json(json.dumps(compose()))  # raises on any unknown key or bad value


def test_compose_services_reference_what_exists():
    doc = compose()
    services = doc["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in doc["volumes"], f"{name} mounts undeclared volume {source}"


def test_compose_runs_the_three_processes_of_one_image_on_minio():
    services = compose()["services"]
    entrypoint = (ROOT / "docker-entrypoint.sh").read_text()
    app = {name: services[name] for name in ("setup", "web", "worker", "beat")}
    assert {s["image"] for s in app.values()} == {"robson-datalake:latest"}
    for service in app.values():
        role = service["command"][0]
        assert re.search(rf"^\s+{role}\)", entrypoint, re.M), f"entrypoint has no {role} role"
        env = service["environment"]
        assert env["DATALAKE_URI"].startswith("s3://")
        assert env["DATALAKE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert env["DATABASE_URL"].startswith("postgres://")
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["setup"]["condition"] == (
            "service_completed_successfully"
        )
    bucket = " ".join(services["minio-bucket"]["command"])
    assert "mc mb --ignore-existing lake/robson-lake" in bucket
    assert app["web"]["environment"]["DATALAKE_URI"].startswith("s3://robson-lake/")


def test_entrypoint_is_valid_shell():
    subprocess.run(["sh", "-n", str(ROOT / "docker-entrypoint.sh")], check=True)
