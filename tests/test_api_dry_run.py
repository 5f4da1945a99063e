"""`POST /v2/deploy/dry-run` (the web UI's per-environment paste) answers what `pacer deploy
--env NAME --dry-run` prints, byte for byte, on the real per-environment file of
tests/fixtures (a copy of shared/examples); bad bodies are 422s naming the field; nothing is changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler.auth.routes import requirement

from .support import REPO, InProcessApi, http
from .test_cli_deploy import pacer_cli

EXAMPLE = REPO / "tests" / "fixtures" / "seed-marathon-qa.json"      # a copy of shared/examples
PROD = {"instances": 4, "args": ["--spring.profiles.active=prod"], "labels": {"HAPROXY_0_VHOST": "prod.example.com"}}


@pytest.fixture(scope="module")
def qa_deployed(api: InProcessApi) -> dict[str, Any]:
    qa = json.loads(EXAMPLE.read_text())
    status, body, _ = http("POST", api.url, "/v2/apps", qa)
    assert status == 201, body
    return qa


def test_the_diff_is_the_one_pacer_deploy_dry_run_prints(api: InProcessApi, qa_deployed: dict[str, Any],
                                                         tmp_path: Path) -> None:
    status, body, _ = http("POST", api.url, "/v2/deploy/dry-run",
                           {"definition": qa_deployed, "env": "prod", "overlay": PROD})
    assert status == 200, body
    assert body["id"] == "/appName" and body["env"] == "prod"
    assert body["definition"]["instances"] == 4 and body["definition"]["labels"] == {
        "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "prod.example.com"}     # merged, not replaced
    assert '-  "instances": 2,\n+  "instances": 4,\n' in body["diff"]

    (tmp_path / "app.json").write_text(EXAMPLE.read_text())
    (tmp_path / "app.prod.json").write_text(json.dumps(PROD))
    printed = pacer_cli("deploy", "-f", str(tmp_path / "app.json"), "--env", "prod", "--dry-run", "--master", api.url)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == json.dumps(body["target"], indent=2, sort_keys=True) + "\n" + body["diff"]


def test_without_an_environment_the_definition_alone_is_compared(api: InProcessApi,
                                                                 qa_deployed: dict[str, Any]) -> None:
    status, body, _ = http("POST", api.url, "/v2/deploy/dry-run", {"definition": qa_deployed})
    assert status == 200, body
    assert body["diff"] == "(no changes)\n" and body["env"] is None
    status, body, _ = http("POST", api.url, "/v2/deploy/dry-run", {"definition": {"id": "/new", "cmd": "true"}})
    assert status == 200 and body["deployed"] is None and body["diff"].startswith("--- deployed\n+++ target\n")


@pytest.mark.parametrize(("body", "path", "words"), [
    ({"definition": {"id": "/a", "cmd": "x"}, "env": "prod"}, "/overlay", "app.prod.json"),
    ({"definition": {"id": "/a", "cmd": "x"}, "overlay": {"instances": 2}}, "/env", "name the environment"),
    ({"definition": {"id": "/a", "cmd": "x"}, "env": "../prod", "overlay": {}}, "/env", "letters, digits"),
    ({"definition": [1], "env": None}, "/definition", "JSON object"),
    ({"definition": {"id": "/a", "cmd": "x"}, "environment": "prod"}, "/environment", "unknown field"),
    ({"definition": {"id": "/a", "cmd": "x"}, "env": "prod", "overlay": {"cpus": -1}}, "/cpus", "0.001"),
])
def test_bad_bodies_name_the_field(api: InProcessApi, body: dict[str, Any], path: str, words: str) -> None:
    status, answer, _ = http("POST", api.url, "/v2/deploy/dry-run", body)
    assert status == 422, answer
    messages = [e for d in answer["details"] if d["path"] == path for e in d["errors"]]
    assert any(words in m for m in messages), answer


def test_nothing_changes_and_a_signed_in_caller_may_ask(api: InProcessApi, qa_deployed: dict[str, Any]) -> None:
    version = http("GET", api.url, "/v2/apps/appName")[1]["app"]["version"]
    assert http("POST", api.url, "/v2/deploy/dry-run", {"definition": qa_deployed, "env": "prod", "overlay": PROD})[0] == 200
    assert http("GET", api.url, "/v2/apps/appName")[1]["app"]["version"] == version
    assert requirement("POST", "/v2/deploy/dry-run").kind == "authenticated"   # the handler checks viewer on the id
