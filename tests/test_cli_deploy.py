"""`pacer deploy` and `pacer schema` as a CI job runs them: real subprocesses, real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .support import REPO, wait_until


def pacer_cli(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer.cli", *args], cwd=REPO, capture_output=True,
                          text=True, input=input_text, timeout=120)


def write_definitions(tmp_path: Path) -> Path:
    base = tmp_path / "svc.json"
    base.write_text(json.dumps({"id": "/svc", "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 8,
                                "env": {"PROFILE": "base"}}))
    (tmp_path / "svc.qa.json").write_text(json.dumps({"env": {"PROFILE": "qa"}}))
    (tmp_path / "svc.prod.json").write_text(json.dumps({"instances": 2, "env": {"PROFILE": "prod"}}))
    return base


def test_deploy_merges_the_environment_overlay_and_waits(pacer, tmp_path):
    base = write_definitions(tmp_path)
    result = pacer_cli("deploy", "-f", str(base), "--env", "qa", "--master", pacer.url)
    assert result.returncode == 0, result.stderr
    assert "deployment finished" in result.stdout and "1/1 running" in result.stdout
    app = pacer.get("/v2/apps/svc")[1]["app"]
    assert app["env"] == {"PROFILE": "qa"} and app["instances"] == 1


def test_dry_run_prints_merged_definition_and_diff_without_changing_anything(pacer, tmp_path):
    base = write_definitions(tmp_path)
    assert pacer_cli("deploy", "-f", str(base), "--env", "qa", "--master", pacer.url).returncode == 0
    version = pacer.get("/v2/apps/svc")[1]["app"]["version"]
    result = pacer_cli("deploy", "-f", str(base), "--env", "prod", "--dry-run", "--master", pacer.url)
    assert result.returncode == 0, result.stderr
    assert '-    "PROFILE": "qa"' in result.stdout and '+    "PROFILE": "prod"' in result.stdout
    assert '-  "instances": 1' in result.stdout and '+  "instances": 2' in result.stdout
    assert pacer.get("/v2/apps/svc")[1]["app"]["version"] == version


def test_protected_environment_needs_yes(pacer, tmp_path):
    base = write_definitions(tmp_path)
    refused = pacer_cli("deploy", "-f", str(base), "--env", "prod", "--master", pacer.url, input_text="")
    assert refused.returncode == 1 and "protected" in refused.stderr
    assert pacer.get("/v2/apps/svc")[0] == 404
    done = pacer_cli("deploy", "-f", str(base), "--env", "prod", "--yes", "--master", pacer.url)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: len(pacer.running("/svc")) == 2)


def test_invalid_definition_names_the_field(pacer, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "/bad", "cmd": "x", "instances": -2}))
    result = pacer_cli("deploy", "-f", str(bad), "--master", pacer.url)
    assert result.returncode == 2 and "/instances" in result.stderr and "Traceback" not in result.stderr
    missing = pacer_cli("deploy", "-f", str(bad), "--env", "staging", "--master", pacer.url)
    assert missing.returncode == 2 and "bad.staging.json" in missing.stderr


def test_unreachable_master_is_a_clear_error(tmp_path):
    base = write_definitions(tmp_path)
    result = pacer_cli("deploy", "-f", str(base), "--master", "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_schema_prints_the_app_definition_schema():
    result = pacer_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "instances" in json.dumps(schema) and "healthChecks" in json.dumps(schema)
