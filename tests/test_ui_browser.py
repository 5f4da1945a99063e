"""The web UI in a real browser against a real `pacer serve` with real task processes.

One Chromium and one server for the module; the tests build on each other in file order, as
an operator would: create an app (a validation error first, then fixed), change it through
the diff view and through a pasted per-environment file (the `pacer deploy --dry-run` diff),
scale it and kill a task from the UI and watch the tasks change without a reload (the page
follows /v2/events), follow a task's log, compare and roll back versions,
restart, suspend and destroy an app, see why an app that fits no agent waits and roll its
deployment back, move and cancel a scheduled cutover, promote and abort a canary, see
autoscaler decisions and a scheduled window on the chart, follow a vhost through the built-in
HAProxy bridge to its servers, and last, the "disconnected" banner while the server is away. Every
page is saved as a screenshot in tests/artifacts/ui/; no test may leave a console error
behind but the HTTP errors it provokes on purpose.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from .haproxy_support import backend_cmd
from .support import PacerServer, free_port, kill_task_processes, wait_until
from .ui_support import Ui, chromium, needs_browser

GOLDEN = Path(__file__).resolve().parent / "golden" / "haproxy"

pytestmark = [needs_browser(), pytest.mark.timeout(240)]

TICKER = "while true; do echo tick-$(date +%s%N); sleep 0.3; done"
WEB = {"id": "/ui/web", "cmd": TICKER, "instances": 1, "cpus": 0.05, "mem": 16,
       "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}, "intervalSeconds": 2,
                         "gracePeriodSeconds": 10}]}
ROUTED = {"id": "/ui/routed", "cmd": backend_cmd(), "instances": 1, "cpus": 0.1, "mem": 64,   # a small HTTP server
          "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "routed.example"},
          "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1,
                            "gracePeriodSeconds": 30}]}        # HAProxy checks it too: its servers show a state
SCALED = {"id": "/ui/scaled", "cmd": TICKER, "instances": 1, "cpus": 0.05, "mem": 16,   # a few % of its cpus: over 1
          "labels": {"AUTOSCALE_ENABLED": "true", "AUTOSCALE_MAX": "3", "AUTOSCALE_TARGET": "1"}}


HAPROXY = shutil.which("haproxy") is not None


def scaled_app() -> dict[str, Any]:
    """SCALED with a scheduled window that opens a few seconds after it starts, for an hour, with
    bounds it keeps anyway: the chart shows decisions before and inside it."""
    now = datetime.now(timezone.utc)
    window = {"name": "busy hours", "from": (now + timedelta(seconds=4)).isoformat(),
              "to": (now + timedelta(hours=1)).isoformat(), "minInstances": 1, "maxInstances": 3}
    return {**SCALED, "labels": {**SCALED["labels"], "AUTOSCALE_SCHEDULE": json.dumps([window])}}


def bridge_flags() -> tuple[str, ...]:
    """The built-in HAProxy bridge on free loopback ports, when HAProxy is installed. It serves
    the group "external" only, so the service ports of the other apps (10000…) stay unbound."""
    if not HAPROXY:
        return ("--haproxy-bridge", "off")
    return ("--haproxy-bridge", "on", "--haproxy-group", "external", "--haproxy-http-port", str(free_port()),
            "--haproxy-https-port",
            str(free_port()), "--haproxy-stats-port", str(free_port()), "--haproxy-apps-port", str(free_port()))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacerServer]:
    home = tmp_path_factory.mktemp("ui") / "home"
    home.mkdir()
    pacer = PacerServer(home, "--agent-resources", "cpus=4,mem=4096,disk=1000",
                        "--autoscale-interval", "1", "--metrics-interval", "1", *bridge_flags())
    try:
        pacer.start()
        for app in (scaled_app(), {**ROUTED, "portDefinitions": [{"port": free_port()}]}):   # running meanwhile
            status, body, _ = pacer.request("POST", "/v2/apps", app)
            assert status == 201, body
        yield pacer
    finally:
        pacer.stop()
        kill_task_processes(home)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def ui(browser: Any, server: PacerServer) -> Iterator[Ui]:
    page = Ui(browser, server.url)
    try:
        yield page
        page.check_console()
    finally:
        page.close()


def app_json(server: PacerServer, app_id: str) -> dict[str, Any]:
    status, body, _ = server.get(f"/v2/apps{app_id}")
    assert status == 200, body
    return body["app"]


def settled(server: PacerServer, app_id: str) -> None:
    """Wait for the app's deployments to finish: a change while one runs is refused (409)."""
    wait_until(lambda: not app_json(server, app_id)["deployments"], what=f"the deployments of {app_id} to finish")


def confirm(page: Any, values: dict[str, str] | None = None) -> None:
    """Fill and accept the open confirmation dialog."""
    dialog = page.locator("dialog.confirm[open]")
    for name, value in (values or {}).items():
        dialog.locator(f"input[name={name}]").fill(value)
    dialog.locator("button.primary").click()
    dialog.wait_for(state="detached")


def running_rows(page: Any) -> Any:
    return page.locator("tr[data-task] .state.TASK_RUNNING")


def test_create_shows_each_422_detail_at_its_field_then_creates(ui: Ui, server: PacerServer) -> None:
    ui.expect_status(422, "/v2/apps")
    page = ui.goto("#/create")
    editor = page.get_by_label("App definition (JSON)")
    editor.fill(json.dumps({**WEB, "cpus": -1}))
    page.get_by_role("button", name="Create", exact=True).click()
    note = page.locator('.field-error[data-path="/cpus"]')
    note.wait_for()
    assert "expected 0.001 or more" in note.inner_text()
    # the note sits on the line of "cpus" in the (reformatted) definition
    lines = editor.input_value().split("\n")
    cpus_line = next(i for i, line in enumerate(lines) if line.strip().startswith('"cpus"'))
    assert note.evaluate("n => parseFloat(n.style.top)") == cpus_line * 18
    ui.shot("create-error", docs=True)

    editor.fill(json.dumps(WEB, indent=2))
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url("**#/apps/ui/web")
    running_rows(page).first.wait_for()
    assert app_json(server, "/ui/web")["cpus"] == 0.05
    settled(server, "/ui/web")


def test_pasting_an_existing_id_shows_the_diff_before_the_put(ui: Ui, server: PacerServer) -> None:
    page = ui.goto("#/create")
    page.get_by_label("App definition (JSON)").fill(json.dumps({"id": "/ui/web", "labels": {"team": "ui"}}))
    page.get_by_role("button", name="Create", exact=True).click()
    added = page.locator("pre.diff .add")
    added.first.wait_for()
    assert '"team": "ui"' in " ".join(added.all_inner_texts())
    assert [" ".join(t.split()) for t in page.locator("pre.diff .del").all_inner_texts()] == ['- "labels": {},']
    ui.shot("create-diff")
    page.get_by_role("button", name="Apply changes (PUT)").click()
    page.wait_for_url("**#/apps/ui/web")
    wait_until(lambda: app_json(server, "/ui/web")["labels"] == {"team": "ui"}, what="the PUT to apply")
    settled(server, "/ui/web")


def test_an_environment_file_shows_the_dry_run_diff_then_deploys(ui: Ui, server: PacerServer) -> None:
    ui.expect_status(422, "/v2/deploy/dry-run")
    base = {**WEB, "labels": {"team": "ui"}}                # app.json: what runs now
    page = ui.goto("#/create")
    page.get_by_label("App definition (JSON)").fill(json.dumps(base, indent=2))
    page.get_by_text("Per-environment file").click()
    page.get_by_label("Environment", exact=True).fill("prod")
    overlay = page.get_by_label("Environment file (JSON)")
    overlay.fill(json.dumps({"cpus": -1}))
    page.get_by_role("button", name="Create", exact=True).click()
    page.locator('ul.details li[data-path="/cpus"]').wait_for()        # the merged definition's 422

    prod = {"env": {"STAGE": "prod"}, "labels": {"tier": "front"}}    # app.prod.json
    overlay.fill(json.dumps(prod))
    page.get_by_role("button", name="Create", exact=True).click()
    shown = page.locator("pre.diff.unified")
    shown.wait_for()
    status, expected, _ = server.request("POST", "/v2/deploy/dry-run", {"definition": base, "env": "prod", "overlay": prod})
    assert status == 200, expected
    assert shown.text_content() == expected["diff"]                  # what pacer deploy --dry-run prints
    assert '+    "STAGE": "prod"' in expected["diff"] and '+    "tier": "front"' in expected["diff"]
    ui.shot("create-env", docs=True)
    page.get_by_role("button", name="Deploy in prod (PUT)").click()
    page.wait_for_url("**#/apps/ui/web")
    wait_until(lambda: app_json(server, "/ui/web")["env"] == {"STAGE": "prod"}, what="the environment's PUT")
    assert app_json(server, "/ui/web")["labels"] == {"team": "ui", "tier": "front"}
    settled(server, "/ui/web")


def test_scale_and_kill_from_the_ui_update_the_tasks_without_a_reload(ui: Ui, server: PacerServer) -> None:
    page = ui.goto("#/apps/ui/web")
    running_rows(page).first.wait_for()
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("button", name="Scale", exact=True).click()
    confirm(page, {"instances": "3"})
    page.wait_for_function("() => document.querySelectorAll('tr[data-task] .state.TASK_RUNNING').length === 3")
    page.wait_for_function("() => document.querySelectorAll('tr[data-task] .health .ok').length === 3")
    assert page.evaluate("window.__sameDocument") is True
    assert "healthy" in page.locator("tr[data-task] .health").first.inner_text()
    ui.shot("app", docs=True)
    settled(server, "/ui/web")

    page.locator("tr[data-task]").first.get_by_role("button", name="Kill & scale").click()
    confirm(page)
    page.wait_for_function("() => document.querySelectorAll('tr[data-task]').length === 2")
    assert page.evaluate("window.__sameDocument") is True
    wait_until(lambda: app_json(server, "/ui/web")["instances"] == 2, what="kill and scale to lower instances")
    settled(server, "/ui/web")


def test_follow_a_task_log_and_download_it(ui: Ui, server: PacerServer) -> None:
    task = server.running("/ui/web")[0]["id"]
    status, body, _ = server.get(f"/v2/tasks/{task}/files/stdout?offset=-1")
    if status == 404 and body == {"message": "URI not found"}:
        pytest.skip("this build has no /v2/tasks/{id}/files API")
    page = ui.goto("#/apps/ui/web")
    page.locator(f'tr[data-task="{task}"]').get_by_role("link", name="logs").click()
    log = page.locator("pre.log")
    page.wait_for_function("() => document.querySelector('pre.log').textContent.includes('tick-')")
    before = len(log.inner_text())
    page.wait_for_function("n => document.querySelector('pre.log').textContent.length > n", arg=before)
    ui.shot("logs", docs=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = Path(download.value.path()).read_text()
    assert saved.startswith("tick-") and len(saved) >= before


def test_compare_versions_and_roll_back(ui: Ui, server: PacerServer) -> None:
    versions = server.get("/v2/apps/ui/web/versions")[1]["versions"]
    first = min(versions)
    latest = max(versions)
    page = ui.goto("#/apps/ui/web")
    row = page.locator(f'tr[data-version="{first}"]')
    row.get_by_label(f"compare a {first}").click()
    page.locator(f'tr[data-version="{latest}"]').get_by_label(f"compare b {latest}").click()
    page.get_by_text(f"Changes from {first} to {latest}").wait_for()
    added = " ".join(page.locator("pre.diff .add").all_inner_texts())
    removed = " ".join(page.locator("pre.diff .del").all_inner_texts())
    assert '"instances": 2' in added and '"team": "ui"' in added and '"instances": 1' in removed
    ui.shot("versions", docs=True)

    row.get_by_role("button", name="Roll back to this").click()
    confirm(page)
    page.wait_for_function("() => document.querySelectorAll('tr[data-task]').length === 1")
    app = app_json(server, "/ui/web")
    assert app["instances"] == 1 and app["labels"] == {}


def test_restart_suspend_and_destroy_from_the_ui(ui: Ui, server: PacerServer) -> None:
    status, body, _ = server.request("POST", "/v2/apps", {"id": "/ui/short", "cmd": "sleep 3600", "cpus": 0.01,
                                                          "mem": 8})
    assert status == 201, body
    ui.expect_status(404, "/v2/apps/ui/short")              # a refresh racing the destroy may see it gone
    ui.expect_status(404, "/v2/apps/ui/short/versions")
    page = ui.goto("#/apps/ui/short")
    first = page.locator("tr[data-task]").first
    first.locator(".state.TASK_RUNNING").wait_for()
    old = first.get_attribute("data-task")
    settled(server, "/ui/short")

    page.get_by_role("button", name="Restart", exact=True).click()
    confirm(page)
    page.locator("tr[data-task] .state.TASK_RUNNING").first.wait_for()
    page.wait_for_function("old => { const rows = document.querySelectorAll('tr[data-task]');"
                           " return rows.length === 1 && rows[0].dataset.task !== old"
                           " && rows[0].querySelector('.state.TASK_RUNNING') !== null; }", arg=old)
    settled(server, "/ui/short")

    page.get_by_role("button", name="Suspend", exact=True).click()
    confirm(page)
    page.get_by_text("No tasks.").wait_for()
    assert app_json(server, "/ui/short")["instances"] == 0
    settled(server, "/ui/short")

    page.get_by_role("button", name="Destroy", exact=True).click()
    confirm(page)
    page.wait_for_url("**#/apps")
    page.locator('tr[data-app="/ui/web"]').wait_for()
    assert page.locator('tr[data-app="/ui/short"]').count() == 0
    wait_until(lambda: server.get("/v2/apps/ui/short")[0] == 404, what="the app to be gone")


def test_an_app_that_fits_no_agent_shows_why_and_its_deployment_rolls_back(ui: Ui, server: PacerServer) -> None:
    status, body, _ = server.request("POST", "/v2/apps", {"id": "/ui/huge", "cmd": "sleep 3600", "cpus": 100,
                                                          "mem": 8})
    assert status == 201, body
    page = ui.goto("#/apps/ui/huge")
    reason = page.locator("[data-queue] .reason")
    reason.wait_for()
    assert "cpus" in reason.inner_text()
    ui.shot("queue", docs=True)

    page = ui.goto("#/deployments")
    card = page.locator("article.deployment", has_text="/ui/huge")
    card.locator(".app-progress .reason").wait_for()
    assert "cpus" in card.locator(".app-progress .reason").inner_text()
    ui.shot("deployments", docs=True)
    card.get_by_role("button", name="Roll back").click()
    confirm(page)
    card.wait_for(state="detached")
    wait_until(lambda: server.get("/v2/apps/ui/huge")[0] == 404, what="the rollback to remove the new app")


def test_a_scheduled_cutover_is_listed_moved_and_cancelled(ui: Ui, server: PacerServer) -> None:
    shanghai = timezone(timedelta(hours=8))          # written with an offset, as the teams write theirs
    at = (datetime.now(shanghai) + timedelta(hours=1)).isoformat(timespec="seconds")
    status, body, _ = server.request("POST", f"/v2/apps?at={quote(at)}",
                                     {"id": "/ui/later", "cmd": "sleep 3600", "cpus": 0.01, "mem": 8})
    assert status == 201 and body["status"] == "scheduled", body
    page = ui.goto("#/deployments")
    card = page.locator(f'article[data-deployment="{body["deploymentId"]}"]')
    card.wait_for()
    assert card.get_attribute("data-status") == "scheduled"
    assert at in card.locator(".when").inner_text()
    ui.shot("deployments-scheduled", docs=True)

    later = (datetime.fromisoformat(at) + timedelta(hours=1)).isoformat()
    card.get_by_role("button", name="Move", exact=True).click()
    confirm(page, {"scheduledAt": later})
    card.locator(".when", has_text=later).wait_for()
    card.get_by_role("button", name="Cancel", exact=True).click()
    confirm(page)
    card.wait_for(state="detached")
    assert [d for d in server.get("/v2/deployments?embed=pending")[1] if d["id"] == body["deploymentId"]] == []
    assert server.get("/v2/apps/ui/later")[0] == 404


CANARY = {"minimumHealthCapacity": 1, "maximumOverCapacity": 1,
          "canary": {"instances": 1, "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}}


def canary_app(release: str) -> dict[str, Any]:
    return {"id": "/ui/canary", "cmd": "sleep 3600", "instances": 2, "cpus": 0.01, "mem": 8,
            "env": {"RELEASE": release}, "upgradeStrategy": CANARY}


def started_canary(server: PacerServer, release: str) -> str:
    status, body, _ = server.request("PUT", "/v2/apps/ui/canary", canary_app(release))
    assert status == 200, body
    return str(body["deploymentId"])


def test_a_canary_is_promoted_and_aborted_from_the_ui(ui: Ui, server: PacerServer) -> None:
    status, body, _ = server.request("POST", "/v2/deployments/none/abort", {})
    if status == 404 and body == {"message": "URI not found"}:
        pytest.skip("this build has no canary promote/abort API")
    assert server.request("POST", "/v2/apps", canary_app("1"))[0] == 201
    settled(server, "/ui/canary")
    deployment = started_canary(server, "2")
    page = ui.goto("#/deployments")
    box = page.locator(f'article[data-deployment="{deployment}"] .canary')
    box.get_by_text("weight 25%, step 1 of 4").wait_for()
    box.get_by_text("waiting for promotion").wait_for()
    ui.shot("deployments-canary", docs=True)
    box.get_by_role("button", name="Promote step").click()
    confirm(page)
    box.get_by_text("weight 50%, step 3 of 4").wait_for()
    box.get_by_role("button", name="Promote fully").click()
    confirm(page)
    box.wait_for(state="detached")
    settled(server, "/ui/canary")
    assert app_json(server, "/ui/canary")["env"] == {"RELEASE": "2"}

    deployment = started_canary(server, "3")
    box = page.locator(f'article[data-deployment="{deployment}"] .canary')
    box.get_by_text("waiting for promotion").wait_for()
    box.get_by_role("button", name="Abort canary").click()
    confirm(page, {"reason": "error rate"})
    box.wait_for(state="detached")
    settled(server, "/ui/canary")
    assert app_json(server, "/ui/canary")["env"] == {"RELEASE": "2"}
    assert server.request("DELETE", "/v2/apps/ui/canary")[0] == 200


def pair(release: str) -> dict[str, Any]:
    return {"id": "/ui/pair", "apps": [{**canary_app(release), "id": f"/ui/pair/{name}"} for name in ("api", "web")]}


def test_each_canary_of_a_group_is_steered_from_the_ui(ui: Ui, server: PacerServer) -> None:
    """Two canary apps in one deployment: a box each, the buttons act on their own app
    (`?appId=`), and the abort of one rolls the whole group back."""
    status, body, _ = server.request("PUT", "/v2/groups/ui/pair", pair("1"))
    assert status == 200, body
    for app_id in ("/ui/pair/api", "/ui/pair/web"):
        settled(server, app_id)
    status, body, _ = server.request("PUT", "/v2/groups/ui/pair", pair("2"))
    assert status == 200, body
    page = ui.goto("#/deployments")
    card = page.locator(f'article[data-deployment="{body["deploymentId"]}"]')
    api, web = (card.locator(f'.canary[data-app="/ui/pair/{name}"]') for name in ("api", "web"))
    for box in (api, web):
        box.get_by_text("weight 25%, step 1 of 4").wait_for()
    ui.shot("deployments-two-canaries")
    web.get_by_role("button", name="Promote step").click()
    confirm(page)
    web.get_by_text("weight 50%, step 3 of 4").wait_for()
    assert "weight 25%, step 1 of 4" in api.inner_text()                 # the other canary kept its step
    api.get_by_role("button", name="Abort canary").click()
    confirm(page, {"reason": "api errors"})
    card.wait_for(state="detached")
    for app_id in ("/ui/pair/api", "/ui/pair/web"):
        settled(server, app_id)
        assert app_json(server, app_id)["env"] == {"RELEASE": "1"}      # the whole group rolled back
    assert server.request("DELETE", "/v2/groups/ui/pair")[0] == 200


def test_autoscaler_decisions_on_the_chart(ui: Ui, server: PacerServer) -> None:
    wait_until(lambda: [d for d in server.get("/v2/autoscaler/decisions?appId=/ui/scaled")[1]["decisions"]
                        if d.get("schedule", {}).get("windows")], what="an autoscaler decision in the window")
    page = ui.goto("#/autoscaler")
    page.locator('table.policies tr[data-app="/ui/scaled"]').get_by_role("link").click()
    page.locator("svg.chart circle.marker.decision").first.wait_for()
    assert page.locator("svg.chart .ref.target").count() == 1
    assert page.locator("table.decisions tbody tr").count() >= 1
    page.locator('svg.chart g.band.window[data-window="busy hours"] rect').wait_for()      # the window, shaded
    assert "busy hours" in page.locator("table.decisions tbody tr td.window").first.inner_text()
    ui.shot("autoscaler", docs=True)


@pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (apt-get install haproxy)")
def test_haproxy_routes_from_vhost_to_app_to_servers(ui: Ui, server: PacerServer) -> None:
    wait_until(lambda: [a for a in server.get("/v2/haproxy/apps")[1]["apps"] if a["id"] == "/ui/routed"
                        and a["included"] and a["servers"] == 1], what="the bridge to route /ui/routed")
    task = server.running("/ui/routed")[0]
    wait_until(lambda: [s for s in server.get("/v2/haproxy/servers")[1]["servers"]
                        if s["taskId"] == task["id"] and s["status"] == "UP"], what="HAProxy to see the server UP")
    page = ui.goto("#/haproxy")
    route = page.locator('tr[data-route="routed.example"]')
    route.wait_for()
    assert route.get_by_role("link").inner_text() == "/ui/routed"
    assert f":{task['ports'][0]} (1)" in route.inner_text()      # the server, at HAProxy's default weight
    state = route.locator('[data-server] .srv-state.up')          # its state as HAProxy reports it, and last check
    assert state.inner_text() == "UP" and "L7OK" in route.inner_text()
    for verdict in server.get("/v2/haproxy/apps")[1]["apps"]:
        assert page.locator(f'table.haproxy-{verdict["state"]} tr[data-app="{verdict["id"]}"]').count() == 1, verdict
    ui.shot("haproxy", docs=True)


def test_haproxy_routes_are_read_from_the_running_configuration(ui: Ui) -> None:
    """The HAProxy page's reading of haproxy.cfg, run in the browser on the renderer's golden files."""
    page = ui.goto("#/apps")
    page.locator("table.apps").wait_for()
    read = "async text => (await import('/ui/static/haproxy-config.js')).routesFromConfig(text)"

    by_path = page.evaluate(read, (GOLDEN / "path_only.cfg").read_text())
    assert {"port": 10006, "backend": "static_10006"} in by_path["ports"]
    assert by_path["vhosts"] == [{"host": "*", "path": "/static", "backend": "static_10006"}]
    assert by_path["backends"]["static_10006"]["servers"] == [
        {"name": "static.1", "address": "127.0.0.1:31007", "weight": 1, "checked": False, "disabled": False}]

    by_host = page.evaluate(read, (GOLDEN / "backend_weight.cfg").read_text())
    assert {"host": "w.example.com", "path": "", "backend": "high_10023"} in by_host["vhosts"]
    assert [s["address"] for s in by_host["backends"]["high_10023"]["servers"]] == ["127.0.0.1:31025"]

    canary = page.evaluate(read, "backend web_10000\n  server web.1 127.0.0.1:31001 weight 90\n"
                                 "  server web.2 127.0.0.1:31002 weight 10 check\n")
    assert [(s["weight"], s["checked"]) for s in canary["backends"]["web_10000"]["servers"]] == [(90, False), (10, True)]

    gated = page.evaluate(read, (GOLDEN / "health_gating.cfg").read_text())
    assert all(s["checked"] for b in gated["backends"].values() for s in b["servers"] if s["name"].startswith("gated"))


def test_apps_tree_filters_by_status_and_label(ui: Ui) -> None:
    page = ui.goto("#/apps")
    page.locator('tr[data-app="/ui/web"]').wait_for()
    assert page.locator("tr.group", has_text="ui/").count() == 1
    ui.shot("apps", docs=True)
    search = page.get_by_label("Filter apps")
    search.fill("autoscale_enabled=true")
    page.locator('tr[data-app="/ui/web"]').wait_for(state="detached")
    assert page.locator('tr[data-app="/ui/scaled"]').count() == 1
    search.fill("suspended")
    page.get_by_text("No app matches.").wait_for()


def test_zz_the_banner_shows_while_the_server_is_away(browser: Any, server: PacerServer) -> None:
    """Last in the module: it stops the module's server, and starts it again on the same port."""
    ui = Ui(browser, server.url)
    try:
        page = ui.goto("#/apps")
        page.wait_for_function("() => document.body.dataset.stream === 'connected'")
        assert page.locator("#banner").is_hidden()
        server.stop(signal.SIGTERM)
        page.locator("#banner").wait_for(state="visible")
        assert "retrying" in page.locator("#banner").inner_text()
        ui.shot("disconnected")
        server.start()
        page.locator("#banner").wait_for(state="hidden")
        page.wait_for_function("() => document.body.dataset.stream === 'connected'")
        page.locator('tr[data-app="/ui/web"]').wait_for()
        assert not [e for e in ui.errors if e.startswith("uncaught")]
    finally:
        ui.close()
