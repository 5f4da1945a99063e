"""`pacer deploy -f app.json --env prod`: one command from CI to a converged deployment.

The definition for an environment is the base file with `app.<env>.json` merged on top (JSON
Merge Patch). `--dry-run` shows the merged definition and what would change against the
deployed version. Protected environments ask before acting unless `--yes`. The command waits
for the deployment and prints progress, so a CI log shows where it stands.

`--at TIME` schedules the cutover instead (Pacer stores it and starts it then): the command
prints what was scheduled and returns. A change Pacer holds for approval (the auth file's
`[[approval]]` paths) is waited for like a deployment: the command prints who may approve
it, then its progress, and fails with the reason when it is rejected or expires.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_definitions import definition_diff, load_environment_definition, parse_app_definition

from pacer_client import NO_ACCESS, Access, ClientError, PacerClient

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
    at: str | None = None            # schedule the cutover (ISO 8601 with an offset)


def _confirm(env: str) -> bool:
    if not sys.stdin.isatty():
        print(f"pacer: environment '{env}' is protected; pass --yes to deploy without a prompt", file=sys.stderr)
        return False
    answer = input(f"Deploy to protected environment '{env}'? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def approval_line(approval: dict[str, Any], author: str | None = None) -> str:
    """Who must approve a held deployment, for the CI log."""
    approvers = approval.get("approvers") or []
    who = ", ".join(approvers) if approvers else "nobody holds the approver role on it yet (see the auth file)"
    by = f" (not {author}, who submitted it)" if author else ""
    return (f"awaiting approval until {approval.get('expiresAt')} by one of: {who}{by}; "
            f"approve with POST /v2/deployments/<id>/approve")


def _status_line(app_id: str, entry: dict[str, Any] | None, app: dict[str, Any]) -> str:
    if entry is not None and entry.get("status") == "awaiting approval":
        return f"  {app_id}: {approval_line(entry.get('approval') or {}, entry.get('author'))}"
    if entry is not None and entry.get("status") == "scheduled":
        approval = entry.get("approval") or {}
        by = f" (approved by {approval['approvedBy']})" if approval.get("approvedBy") else ""
        return f"  {app_id}: scheduled for {entry.get('scheduledAt')}{by}"
    blocks = _canary_blocks(entry)
    mine = [b for b in blocks if b.get("app") == app_id]
    if mine or len(blocks) == 1:
        return f"  {app_id}: {canary_line((mine or blocks)[0])}"
    if blocks:       # a group of several canary apps: one line each
        return "\n".join(f"  {b.get('app')}: {canary_line(b)}" for b in blocks)
    return f"  {app_id}: {app.get('tasksRunning', 0)}/{app.get('instances', '?')} running"


def _canary_blocks(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A deployment row's canary blocks: ``canaries`` (one per app), or the one-canary ``canary``."""
    if entry is None:
        return []
    many = entry.get("canaries")
    if isinstance(many, list):
        return [b for b in many if isinstance(b, dict)]
    return [entry["canary"]] if isinstance(entry.get("canary"), dict) else []


def canary_line(canary: dict[str, Any]) -> str:
    """A canary deployment's progress for the CI log: step, weight, last verdict, what it waits for."""
    if canary.get("phase") == "starting":
        return f"canary: starting {canary.get('instances', '?')} instance(s) beside the stable ones"
    if canary.get("phase") == "promoted":
        return "canary promoted: rolling the rest"
    line = f"canary step {canary.get('step')}/{canary.get('steps')} at {canary.get('weight')}%"
    analysis = canary.get("lastAnalysis")
    if isinstance(analysis, dict):
        line += f", last analysis {analysis.get('verdict')}: {analysis.get('reason')}"
    if canary.get("waitingForPromotion"):
        line += "; waiting for POST /v2/deployments/<id>/promote"
    return line


async def _wait_for(client: PacerClient, app_id: str, deployment_id: str, timeout: float) -> bool:
    """True once the deployment is gone from /v2/deployments (finished); False on timeout or
    when it ended unstarted (rejected, expired, refused: the reason is printed)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        deployments = await client.deployments(pending=True)
        entry = next((d for d in deployments if d.get("id") == deployment_id), None)
        if entry is not None and entry.get("status") == "failed":
            print(f"pacer: deployment {deployment_id} of {app_id} ended without starting: {entry.get('reason')}",
                  file=sys.stderr)
            return False
        app = await client.get_app(app_id) or {}
        line = _status_line(app_id, entry, app)
        if line != last:
            print(line, flush=True)
            last = line
        if entry is None:
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
            result = await client.put_app(app_id, data, force=options.force, partial=False, at=options.at)
        except ClientError as exc:
            print(f"pacer: deploy of {app_id} failed: {exc}", file=sys.stderr)
            if isinstance(exc.body, dict):
                for detail in exc.body.get("details", []):
                    print(f"  {detail.get('path')}: {'; '.join(detail.get('errors', []))}", file=sys.stderr)
            return 1
        deployment_id = result.get("deploymentId") or (result.get("deployments") or [{}])[0].get("id")
        if result.get("scheduledAt"):
            print(f"scheduled {app_id} version {result.get('version')} for {result['scheduledAt']} "
                  f"(deployment {deployment_id}; cancel with DELETE /v2/deployments/{deployment_id})", flush=True)
            if result.get("status") == "awaiting approval":
                print(f"  {app_id}: {approval_line(result.get('approval') or {})}", flush=True)
            return 0
        print(f"deploying {app_id} version {result.get('version')} (deployment {deployment_id})", flush=True)
        if result.get("status") == "awaiting approval":
            print(f"  {app_id}: {approval_line(result.get('approval') or {})}", flush=True)
        if options.wait <= 0 or not deployment_id:
            return 0
        if await _wait_for(client, app_id, deployment_id, options.wait):
            print(f"{app_id}: deployment finished", flush=True)
            return 0
        print(f"pacer: {app_id} did not finish deploying within {options.wait:.0f} s; see /v2/queue", file=sys.stderr)
        return 1
