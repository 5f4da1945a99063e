"""`pacer deploy -f app.json --env prod`: one command from CI to a converged deployment.

The definition for an environment is the base file with `app.<env>.json` merged on top (JSON
Merge Patch). `--dry-run` shows the merged definition and what would change against the
deployed version. Protected environments ask before acting unless `--yes`. The command waits
for the deployment and prints progress, so a CI log shows where it stands.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_definitions import load_environment_definition, parse_app_definition

from pacer_client import NO_ACCESS, Access, ClientError, PacerClient

_SERVER_FIELDS = ("version", "versionInfo", "tasks", "tasksStaged", "tasksRunning", "tasksHealthy",
                  "tasksUnhealthy", "deployments", "lastTaskFailure")


@dataclass(frozen=True)
class DeployOptions:
    file: Path
    env: str | None
    master: str
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    protected: set[str] = field(default_factory=set)
    wait: float = 300.0
    access: Access = NO_ACCESS       # credentials and CA for a secured Pacer


def definition_diff(deployed: dict[str, Any] | None, target: dict[str, Any]) -> str:
    """Unified diff of the deployed definition against the target, both in normalised form."""
    def lines(data: dict[str, Any] | None) -> list[str]:
        if data is None:
            return []
        clean = {k: v for k, v in data.items() if k not in _SERVER_FIELDS}
        return json.dumps(clean, indent=2, sort_keys=True).splitlines(keepends=True)
    diff = difflib.unified_diff(lines(deployed), lines(target), "deployed", "target")
    return "".join(diff) or "(no changes)\n"


def _confirm(env: str) -> bool:
    if not sys.stdin.isatty():
        print(f"pacer: environment '{env}' is protected; pass --yes to deploy without a prompt", file=sys.stderr)
        return False
    answer = input(f"Deploy to protected environment '{env}'? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def _wait_for(client: PacerClient, app_id: str, deployment_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        deployments = await client.deployments()
        app = await client.get_app(app_id) or {}
        line = f"  {app_id}: {app.get('tasksRunning', 0)}/{app.get('instances', '?')} running"
        if line != last:
            print(line, flush=True)
            last = line
        if not any(d.get("id") == deployment_id for d in deployments):
            return True
        await asyncio.sleep(1.0)
    return False


async def run_deploy(options: DeployOptions) -> int:
    data = load_environment_definition(options.file, options.env)
    target = parse_app_definition(data).to_json()
    app_id = target["id"]
    async with PacerClient(options.master, access=options.access) as client:
        try:
            deployed = await client.get_app(app_id)
            if options.dry_run:
                print(json.dumps(target, indent=2, sort_keys=True))
                print(definition_diff(deployed, target), end="")
                return 0
            if options.env in options.protected and not options.yes and not _confirm(options.env):
                return 1
            result = await client.put_app(app_id, data, force=options.force, partial=False)
        except ClientError as exc:
            print(f"pacer: deploy of {app_id} failed: {exc}", file=sys.stderr)
            if isinstance(exc.body, dict):
                for detail in exc.body.get("details", []):
                    print(f"  {detail.get('path')}: {'; '.join(detail.get('errors', []))}", file=sys.stderr)
            return 1
        deployment_id = result.get("deploymentId") or (result.get("deployments") or [{}])[0].get("id")
        print(f"deploying {app_id} version {result.get('version')} (deployment {deployment_id})", flush=True)
        if options.wait <= 0 or not deployment_id:
            return 0
        if await _wait_for(client, app_id, deployment_id, options.wait):
            print(f"{app_id}: deployment finished", flush=True)
            return 0
        print(f"pacer: {app_id} did not finish deploying within {options.wait:.0f} s; see /v2/queue", file=sys.stderr)
        return 1
