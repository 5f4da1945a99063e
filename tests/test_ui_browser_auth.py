"""The web UI with authentication on, in a real browser against a real `pacer serve`.

The page loads without credentials and asks for them (a user and password, or a token); it
keeps them for the tab only and sends them with every call, the event stream included (read
with fetch(), since EventSource cannot send a header). A viewer sees only the apps it may
view and no action buttons; a deployer gets the actions on its own apps. A deployment held by
an `[[approval]]` gate cannot be approved by its author (the server's 403 is shown) and runs
once an approver approves it from the page.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.auth.passwords import hash_password, hash_token
from scheduler.auth.policy import Grant, User, may

from .support import PacerServer, http, kill_task_processes, wait_until
from .ui_support import Ui, chromium, needs_browser

pytestmark = [needs_browser(), pytest.mark.timeout(180)]

PASSWORDS = {"viewer": "view-pw", "admin": "admin-pw", "carol": "carol-pw"}
TOKEN = "ui-test-token-with-enough-entropy-0123456789"
SMALL = {"cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacerServer]:
    base = tmp_path_factory.mktemp("ui-auth")
    (base / "auth.toml").write_text(f'''
[users.viewer]
password = "{hash_password(PASSWORDS["viewer"])}"
roles = ["viewer on /team-a/**"]

[users.deployer]
tokens = ["{hash_token(TOKEN)}"]
roles = ["deployer on /team-a/**"]

[users.admin]
password = "{hash_password(PASSWORDS["admin"])}"
roles = ["admin on /**"]

[users.carol]
password = "{hash_password(PASSWORDS["carol"])}"
roles = ["approver on /prod/**"]

[[approval]]
paths = ["/prod/**"]
''')
    home = base / "home"
    home.mkdir()
    pacer = PacerServer(home, "--auth-file", str(base / "auth.toml"), "--agent-resources", "cpus=2,mem=1024,disk=100",
                        "--no-autoscaler")
    try:
        pacer.start()
        for team in ("team-a", "team-b"):
            status, body, _ = http("POST", pacer.url, "/v2/apps", {"id": f"/{team}/web", **SMALL},
                                   headers=_basic("admin", PASSWORDS["admin"]))
            assert status == 201, body
        status, me, _ = http("GET", pacer.url, "/v2/auth/whoami", headers={"Authorization": f"Bearer {TOKEN}"})
        assert (status, me) == (200, {"authEnabled": True, "user": "deployer",
                                      "grants": [{"role": "deployer", "pattern": "/team-a/**"}]})
        assert http("GET", pacer.url, "/v2/auth/whoami")[0] == 401
        yield pacer
    finally:
        pacer.stop()
        kill_task_processes(home)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def ui(browser: Any, server: PacerServer) -> Iterator[Ui]:
    page = Ui(browser, server.url)
    page.expect_status(401, "/v2/auth/whoami")      # the first call, before signing in
    try:
        yield page
        page.check_console()
    finally:
        page.close()


def sign_in(page: Any, *, user: str = "", password: str = "", token: str = "") -> None:
    form = page.locator("form#login")
    form.wait_for()
    form.get_by_label("User").fill(user)
    form.get_by_label("Password").fill(password)
    form.get_by_label("Token").fill(token)
    form.get_by_role("button", name="Sign in").click()


def test_a_viewer_signs_in_and_sees_only_its_apps_without_actions(ui: Ui) -> None:
    page = ui.goto("#/apps")
    sign_in(page, user="viewer", password="wrong")
    page.get_by_text("Invalid user, password or token.").wait_for()
    ui.shot("login", docs=True)

    sign_in(page, user="viewer", password=PASSWORDS["viewer"])
    page.locator('tr[data-app="/team-a/web"]').wait_for()
    assert page.locator('tr[data-app="/team-b/web"]').count() == 0
    assert page.get_by_role("link", name="Create app").count() == 0
    page.wait_for_function("() => document.body.dataset.stream === 'connected'")   # the stream took the header
    assert "viewer" in page.locator("#who").inner_text()

    page = ui.goto("#/apps/team-a/web")
    page.get_by_role("heading", name="Tasks").wait_for()
    for action in ("Scale", "Restart", "Suspend", "Destroy"):
        assert page.get_by_role("button", name=action, exact=True).count() == 0


def test_a_token_of_a_deployer_gets_the_actions_on_its_apps_and_signs_out(ui: Ui, server: PacerServer) -> None:
    page = ui.goto("#/apps/team-a/web")
    sign_in(page, token=TOKEN)
    page.get_by_role("button", name="Scale", exact=True).click()
    page.locator("dialog.confirm[open] input[name=instances]").fill("1")
    page.locator("dialog.confirm[open] button.primary").click()
    page.locator("tr[data-task] .state.TASK_RUNNING").first.wait_for()     # live, with the token

    page.get_by_role("button", name="sign out").click()
    page.locator("form#login").wait_for()


PATTERNS = ["/**", "/team-a/**", "/team-a/*", "/team-*/web", "/team-a/web", "/", "/a/**/db", "/team-[ab]/**",
            "/team-[!a]/**", "/t?am-a/*"]
PATHS = ["/", "/team-a", "/team-a/web", "/team-a/x/web", "/team-b/web", "/team-c", "/a/db", "/a/b/c/db", "/tram-a/web"]


def test_the_ui_reads_grants_as_the_api_does(ui: Ui) -> None:
    """The UI's copy of the path-pattern rule (to hide actions) agrees with the API's on every case."""
    page = ui.goto("#/apps")
    page.locator("form#login").wait_for()
    cases = [(role, pattern, granted, path) for role in ("viewer", "deployer", "approver")
             for granted in ("viewer", "deployer", "approver", "admin")
             for pattern in PATTERNS for path in PATHS]
    answers = page.evaluate("""async cases => {
        const {grantsAllow} = await import('/ui/static/auth.js');
        return cases.map(([role, pattern, granted, path]) => grantsAllow([{role: granted, pattern}], role, path));
    }""", cases)
    expected = [may(User("u", grants=(Grant(granted, pattern),)), role, path) for role, pattern, granted, path in cases]
    assert answers == expected, [c for c, a, e in zip(cases, answers, expected) if a != e]


def test_a_held_deployment_is_refused_to_its_author_and_approved_by_a_second_user(
        ui: Ui, browser: Any, server: PacerServer) -> None:
    admin = _basic("admin", PASSWORDS["admin"])
    status, held, _ = http("POST", server.url, "/v2/apps", {"id": "/prod/shop", **SMALL, "instances": 1}, headers=admin)
    assert status == 201 and held["status"] == "awaiting approval", held
    deployment = held["deploymentId"]
    ui.expect_status(403, f"/v2/deployments/{deployment}/approve")
    page = ui.goto("#/deployments")
    sign_in(page, user="admin", password=PASSWORDS["admin"])
    card = page.locator(f'article[data-deployment="{deployment}"]')
    assert "one of: carol" in card.locator(".approval").inner_text()
    card.get_by_role("button", name="Approve").click()          # an admin may approve, but not its own change
    page.locator("dialog.confirm[open] button.primary").click()
    refusal = page.locator("#notices .notice.error")
    refusal.wait_for()
    assert "cannot approve" in refusal.inner_text()
    ui.shot("deployments-approval", docs=True)

    second = Ui(browser, server.url)
    second.expect_status(401, "/v2/auth/whoami")
    try:
        page = second.goto("#/deployments")
        sign_in(page, user="carol", password=PASSWORDS["carol"])
        card = page.locator(f'article[data-deployment="{deployment}"].pending')
        assert card.get_by_role("button", name="Move").count() == 0      # an approver deploys nothing
        card.get_by_role("button", name="Approve").click()
        dialog = page.locator("dialog.confirm[open]")
        dialog.locator("input[name=comment]").fill("ok for the sale")
        dialog.locator("button.primary").click()
        card.wait_for(state="detached")
        page = second.goto("#/apps/prod/shop")
        page.locator("tr[data-task] .state.TASK_RUNNING").first.wait_for()

        wait_until(lambda: http("GET", server.url, "/v2/deployments", headers=admin)[1] == [],
                   what="the approved deployment to finish")
        status, held, _ = http("PUT", server.url, "/v2/apps/prod/shop", {"instances": 0}, headers=admin)
        assert status == 200 and held["status"] == "awaiting approval", held
        page = second.goto("#/deployments")
        card = page.locator(f'article[data-deployment="{held["deploymentId"]}"]')
        card.get_by_role("button", name="Reject").click()
        dialog = page.locator("dialog.confirm[open]")
        dialog.locator("input[name=comment]").fill("not during the sale")
        dialog.locator("button.primary").click()
        page.locator(f'article[data-deployment="{held["deploymentId"]}"][data-status="failed"]').wait_for()
        assert card.locator(".reason").inner_text() == "rejected by carol: not during the sale"
        assert card.get_by_role("button").count() == 0        # removing it is a deployer's
        second.check_console()
    finally:
        second.close()
    status, body, _ = http("GET", server.url, "/v2/apps/prod/shop", headers=admin)
    assert status == 200 and body["app"]["tasksRunning"] == 1, body


def test_haproxy_page_says_when_no_bridge_runs(ui: Ui) -> None:
    ui.expect_status(404, "/v2/haproxy")
    page = ui.goto("#/haproxy")
    sign_in(page, user="admin", password=PASSWORDS["admin"])
    page.get_by_text("No HAProxy bridge in this process.").wait_for()
    ui.shot("haproxy-none")
