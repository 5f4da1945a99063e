"""Marathon's JSON shapes for apps, tasks and the queue, built from scheduler state.

The app's own definition JSON is rendered once per version (AppRecord.json); only the
counters and embedded lists are added per request.
"""

from __future__ import annotations

from typing import Any

from scheduler.decide import backoff as backoff_math
from scheduler.state.apps import AppRecord
from scheduler.state.clock import iso_timestamp
from scheduler.api.params import SchedulerApi
from scheduler.state.cluster import QueueEntry
from scheduler.deploy.runs import DeploymentRun
from scheduler.state.model import RUNNING, STAGING, STARTING, Instance


def render_task(inst: Instance, sched: SchedulerApi | None = None) -> dict[str, Any]:
    return {
        "id": inst.instance_id,
        "appId": inst.app_id,
        "host": inst.host,
        "ports": list(inst.ports),
        "servicePorts": list(inst.service_ports),
        "slaveId": inst.agent_id,
        "state": "TASK_KILLING" if inst.killing and inst.state == RUNNING else inst.state,
        "stagedAt": iso_timestamp(inst.staged_at),
        "startedAt": iso_timestamp(inst.started_at) if inst.started_at else None,
        "version": inst.version,
        "ipAddresses": [{"ipAddress": "127.0.0.1", "protocol": "IPv4"}],
        "healthCheckResults": sched.view.health_results(inst.instance_id) if sched else [],
        "localVolumes": [],
        "role": "*",
    }


def task_counts(sched: SchedulerApi, insts: list[Instance]) -> dict[str, int]:
    health = [sched.view.healthy(i) for i in insts]
    return {
        "tasksStaged": sum(1 for i in insts if i.state in (STAGING, STARTING)),
        "tasksRunning": sum(1 for i in insts if i.state == RUNNING),
        "tasksHealthy": sum(1 for h in health if h is True),
        "tasksUnhealthy": sum(1 for h in health if h is False),
    }


def render_deployment_ref(deployments: list[DeploymentRun]) -> list[dict[str, str]]:
    return [{"id": d.id} for d in deployments]


def render_app(sched: SchedulerApi, record: AppRecord, embed: set[str]) -> dict[str, Any]:
    """AppInfo: counts and deployments always, tasks/lastTaskFailure when embedded."""
    insts = sched.view.instances_of(record.app_id)
    body = dict(record.json)
    body.update(task_counts(sched, insts))
    runs = sched.view.deployments_of(record.app_id)
    body["deployments"] = render_deployment_ref(runs)
    canary = sched.view.canary_traffic(record.app_id, runs)
    if canary is not None:
        body["canaryTraffic"] = canary     # Pacer's extension, only while a canary runs
    if "tasks" in embed:
        body["tasks"] = [render_task(i, sched) for i in sorted(insts, key=lambda i: i.staged_at)]
    if "lastTaskFailure" in embed and record.app_id in sched.view.last_failures:
        body["lastTaskFailure"] = sched.view.last_failures[record.app_id]
    return body


def render_queue_entry(sched: SchedulerApi, app_id: str, entry: QueueEntry, now: float,
                       with_reason: bool = False) -> dict[str, Any]:
    """One ``/v2/queue`` item.

    No ``role``: Marathon added it with multi-role support (1.9), Pacer has only the role
    ``*``, and marathon-python's strict ``MarathonQueueItem`` rejects the key. ``reason``,
    Pacer's one-sentence why (the status page shows it), comes with ``?embed=reason`` only,
    for the same client's sake.
    """
    record = sched.view.apps[app_id]
    b = sched.view.backoffs.get(app_id)
    left = backoff_math.time_left(b, now)
    return {
        "app": render_app(sched, record, set()),
        "count": entry.count,
        "delay": {"timeLeftSeconds": round(left, 3), "overdue": left <= 0},
        "since": iso_timestamp(entry.since),
        "processedOffersSummary": {
            "processedOffersCount": entry.processed_offers,
            "unusedOffersCount": entry.unused_offers,
            "lastUnusedOfferAt": iso_timestamp(entry.last_unused_offer_at) if entry.last_unused_offer_at else None,
            "rejectSummaryLastOffers": [{"reason": reason, "declined": n, "processed": entry.processed_offers}
                                        for reason, n in sorted(entry.rejections.items())],
        },
        **({"reason": entry.message} if with_reason else {}),
    }
