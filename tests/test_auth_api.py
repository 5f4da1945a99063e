"""Authentication and authorization against a real `pacer serve` on loopback.

The matrix: every endpoint × {no credentials, wrong password, viewer of /team-a, deployer of
/team-a (inside its path with /team-a targets, outside with /team-b ones), admin}, expecting
401, 403, or an answer of the handler (anything but 401/403). Then: listings and /v2/events
show only what the caller may view, the audit log, a bearer token, SIGHUP reloading the file,
the real marathon-python client with basic auth, the private in-process listener refusing
strangers, and the refusal to serve a non-loopback address without authentication.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.auth.passwords import hash_password, hash_token

from .support import REPO, PacerServer, free_port, kill_task_processes, wait_until

PASSWORDS = {"viewer": "view-pw", "deployer": "deploy-pw", "admin": "admin-pw"}
TOKEN = "a-test-token-with-enough-entropy-0123456789"
SMALL = {"cmd": "sleep 1000", "cpus": 0.01, "mem": 8}


def auth_file(path: Path, extra: str = "") -> Path:
    path.write_text(f'''
[users.viewer]
password = "{hash_password(PASSWORDS["viewer"])}"
roles = ["viewer on /team-a/**"]

[users.deployer]
password = "{hash_password(PASSWORDS["deployer"])}"
tokens = ["{hash_token(TOKEN)}"]
roles = ["deployer on /team-a/**"]

[users.admin]
password = "{hash_password(PASSWORDS["admin"])}"
roles = ["admin on /**"]
{extra}''')
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CALLERS: dict[str, dict[str, str]] = {
    "anonymous": {},
    "wrong-password": basic("admin", "nope"),
    "viewer": basic("viewer", PASSWORDS["viewer"]),
    "deployer": basic("deployer", PASSWORDS["deployer"]),
    "admin": basic("admin", PASSWORDS["admin"]),
}
RANK = {"viewer": 0, "deployer": 1, "admin": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacerServer]:
    base = tmp_path_factory.mktemp("auth-api")
    home = base / "home"
    home.mkdir()
    pacer = PacerServer(home, "--auth-file", str(auth_file(base / "auth.toml")),
                        "--agent-resources", "cpus=8,mem=8192,disk=1000", "--autoscale-interval", "0.5")
    try:
        pacer.start()
        for team in ("team-a", "team-b"):
            status, body, _ = pacer.request("POST", "/v2/apps", {"id": f"/{team}/web", "instances": 1, **SMALL},
                                            headers=CALLERS["admin"])
            assert status == 201, body
        wait_until(lambda: all(_tasks(pacer, t) for t in ("team-a", "team-b")), what="a task of each app")
        yield pacer
    finally:
        pacer.stop()
        kill_task_processes(home)


def _tasks(pacer: PacerServer, team: str) -> list[str]:
    status, body, _ = pacer.request("GET", f"/v2/apps/{team}/web/tasks", headers=CALLERS["admin"])
    return [t["id"] for t in body["tasks"]] if status == 200 else []


# (name, method, path or path(team), body or body(server, team), need) where need is "open",
# "auth" (anyone authenticated), or (role, "team") / (role, "/") for a role on the target app
# or on everything.
Body = Any
ENDPOINTS: list[tuple[str, str, str, Body, Any]] = [
    ("ping", "GET", "/ping", None, "open"),
    ("metrics", "GET", "/metrics", None, "open"),
    ("info", "GET", "/v2/info", None, "auth"),
    ("leader", "GET", "/v2/leader", None, "auth"),
    ("abdicate", "DELETE", "/v2/leader", None, ("admin", "/")),
    ("agents", "GET", "/v2/agents", None, "auth"),
    ("apps", "GET", "/v2/apps", None, "auth"),
    ("tasks", "GET", "/v2/tasks", None, "auth"),
    ("queue", "GET", "/v2/queue", None, "auth"),
    ("deployments", "GET", "/v2/deployments", None, "auth"),
    ("cancel unknown deployment", "DELETE", "/v2/deployments/00000000-0000-0000-0000-000000000000", None, "auth"),
    ("groups", "GET", "/v2/groups", None, "auth"),
    ("audit", "GET", "/v2/audit", None, ("admin", "/")),
    ("autoscaler status", "GET", "/v2/autoscaler/status", None, "auth"),
    ("autoscaler decisions", "GET", "/v2/autoscaler/decisions", None, "auth"),
    ("group tree", "GET", "/v2/groups/{team}", None, "auth"),
    ("app", "GET", "/v2/apps/{team}/web", None, ("viewer", "team")),
    ("app tasks", "GET", "/v2/apps/{team}/web/tasks", None, ("viewer", "team")),
    ("app versions", "GET", "/v2/apps/{team}/web/versions", None, ("viewer", "team")),
    ("create app", "POST", "/v2/apps", lambda s, t: {"id": f"/{t}/made", "instances": 0, **SMALL},
     ("deployer", "team")),
    ("update app", "PUT", "/v2/apps/{team}/web?force=true", {"instances": 1}, ("deployer", "team")),
    ("patch app", "PATCH", "/v2/apps/{team}/web?force=true", {"instances": 1}, ("deployer", "team")),
    ("update apps", "PUT", "/v2/apps?force=true", lambda s, t: [{"id": f"/{t}/web", "instances": 1}],
     ("deployer", "team")),
    ("restart app", "POST", "/v2/apps/{team}/nothing/restart", None, ("deployer", "team")),
    ("delete app", "DELETE", "/v2/apps/{team}/nothing", None, ("deployer", "team")),
    ("kill app tasks", "DELETE", "/v2/apps/{team}/web/tasks?host=no-such-host", None, ("deployer", "team")),
    ("delete tasks", "POST", "/v2/tasks/delete?wipe=true",
     lambda s, t: {"ids": _tasks(s, t)[:1] + ["no-such-task"]}, ("deployer", "team")),
    ("privileged app", "POST", "/v2/apps?force=true", lambda s, t: {
        "id": f"/{t}/priv", "instances": 0, "cpus": 0.01, "mem": 8,
        "container": {"type": "DOCKER", "docker": {"image": "busybox", "privileged": True}}}, ("admin", "team")),
    ("host volume", "POST", "/v2/apps?force=true", lambda s, t: {
        "id": f"/{t}/vol", "instances": 0, "cpus": 0.01, "mem": 8,
        "container": {"type": "DOCKER", "docker": {"image": "busybox"},
                      "volumes": [{"containerPath": "/etc2", "hostPath": "/etc", "mode": "RO"}]}}, ("admin", "team")),
    ("group dry run", "PUT", "/v2/groups/{team}?dryRun=true", {"apps": [{"id": "web", "instances": 1, **SMALL}]},
     ("deployer", "team")),
    ("delete group", "DELETE", "/v2/groups/{team}/nothing", None, ("deployer", "team")),
    ("reset delay", "DELETE", "/v2/queue/{team}/web/delay", None, ("admin", "team")),
    ("autoscaler policy", "GET", "/v2/autoscaler/policies/{team}/web", None, ("viewer", "team")),
    ("register policy", "PUT", "/v2/autoscaler/policies/{team}/nothing",
     {"metric": "cpu", "target": 50, "min": 1, "max": 2}, ("admin", "team")),
    ("remove policy", "DELETE", "/v2/autoscaler/policies/{team}/nothing", None, ("admin", "team")),
]

GRANTS = {"viewer": ("viewer", "team-a"), "deployer": ("deployer", "team-a"), "admin": ("admin", None)}


def expected(caller: str, need: Any, team: str) -> int | None:
    """401, 403, or None (the handler answers: anything else)."""
    if need == "open":
        return None
    if caller in ("anonymous", "wrong-password"):
        return 401
    if need == "auth":
        return None
    role, where = need
    granted, scope = GRANTS[caller]
    if RANK[granted] < RANK[role]:
        return 403
    if scope is None:
        return None
    return None if where == "team" and team == scope else 403


CASES = [pytest.param(name, method, path, body, need, caller, team, id=f"{name}-{team}-{caller}")
         for name, method, path, body, need in ENDPOINTS
         for team in (("team-a", "team-b") if "{team}" in path or callable(body) else ("-",))
         for caller in CALLERS]


@pytest.mark.parametrize("name, method, path, body, need, caller, team", CASES)
def test_matrix(server: PacerServer, name: str, method: str, path: str, body: Body, need: Any,
                caller: str, team: str) -> None:
    payload = body(server, team) if callable(body) else body
    status, answer, headers = server.request(method, path.format(team=team), payload, headers=CALLERS[caller])
    want = expected(caller, need, team)
    if want is None:
        assert status not in (401, 403), (status, answer)
    else:
        assert status == want, (status, answer)
        assert isinstance(answer, dict) and isinstance(answer.get("message"), str)
        if want == 401:
            assert "realm=\"pacer\"" in headers["www-authenticate"]
            assert "pw" not in answer["message"]
        else:
            assert "needs" in answer["message"] and "/" in answer["message"]


def test_refusal_names_the_permission_and_path(server: PacerServer) -> None:
    status, body, _ = server.request("PUT", "/v2/apps/team-b/web", {"instances": 2}, headers=CALLERS["deployer"])
    assert status == 403
    assert body["message"] == "Not Authorized to perform this action: user 'deployer' needs deployer on /team-b/web"



def test_a_group_rollback_is_judged_by_the_version_it_restores(server: PacerServer) -> None:
    """A deployer of /team-a may not restore a group version holding a privileged app."""
    privileged = {"id": "db", "instances": 0, "cpus": 0.01, "mem": 8,
                  "container": {"type": "DOCKER", "docker": {"image": "busybox", "privileged": True}}}
    versions = []
    for app in (privileged, {"id": "db", "instances": 0, **SMALL}):
        status, body, _ = server.request("PUT", "/v2/groups/team-a/rollback?force=true", {"apps": [app]},
                                         headers=CALLERS["admin"])
        assert status == 200, body
        versions.append(body["version"])
    status, body, _ = server.request("PUT", "/v2/groups/team-a/rollback?force=true", {"version": versions[0]},
                                     headers=CALLERS["deployer"])
    assert status == 403, body
    assert "needs admin on /team-a/rollback/**" in body["message"] and "privileged" in body["message"]
    status, body, _ = server.request("PUT", "/v2/groups/team-a/rollback?force=true", {"version": versions[1]},
                                     headers=CALLERS["deployer"])
    assert status == 200, body
    status, body, _ = server.request("PUT", "/v2/groups/team-a/rollback?force=true", {"version": versions[0]},
                                     headers=CALLERS["admin"])
    assert status == 200, body
    _, app, _ = server.request("GET", "/v2/apps/team-a/rollback/db", headers=CALLERS["admin"])
    assert app["app"]["container"]["docker"]["privileged"] is True

def test_listings_show_only_what_the_caller_may_view(server: PacerServer) -> None:
    def ids(caller: str, path: str, key: str) -> set[str]:
        status, body, _ = server.request("GET", path, headers=CALLERS[caller])
        assert status == 200, body
        return {item["id"] if key == "apps" else item["appId"] for item in body[key]}
    everything = ids("admin", "/v2/apps", "apps")
    assert "/team-b/web" in everything
    assert ids("viewer", "/v2/apps", "apps") == {a for a in everything if a.startswith("/team-a/")}
    assert {a.split("/")[1] for a in ids("viewer", "/v2/tasks", "tasks")} == {"team-a"}
    assert "/team-b/web" in ids("admin", "/v2/tasks", "tasks")
    status, tree, _ = server.request("GET", "/v2/groups", headers=CALLERS["viewer"])
    assert status == 200 and [g["id"] for g in tree["groups"]] == ["/team-a"]


def test_bearer_tokens(server: PacerServer) -> None:
    status, body, _ = server.request("GET", "/v2/apps/team-a/web", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    status, _, _ = server.request("GET", "/v2/apps/team-a/web", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert status == 401


def test_every_mutation_is_audited(server: PacerServer) -> None:
    server.request("PUT", "/v2/apps/team-b/web", {"instances": 2}, headers=CALLERS["deployer"])
    status, _, _ = server.request("PUT", "/v2/apps/team-a/web?force=true", {"instances": 1},
                                  headers=CALLERS["deployer"])
    assert status == 200
    status, body, _ = server.request("GET", "/v2/audit?limit=1000", headers=CALLERS["admin"])
    assert status == 200
    entries = body["entries"]
    refused = [e for e in entries if e["path"] == "/v2/apps/team-b/web" and e["user"] == "deployer"][-1]
    assert refused["status"] == 403 and refused["appIds"] == ["/team-b/web"] and "needs deployer" in refused["error"]
    done = [e for e in entries if e["path"] == "/v2/apps/team-a/web?force=true" and e["method"] == "PUT"][-1]
    assert done["status"] == 200 and done["version"] and done["deploymentId"] and done["source"] == "127.0.0.1"
    assert not any(e["method"] == "GET" for e in entries)
    text = (server.home / "audit" / "audit.log").read_text()
    assert all(pw not in text for pw in PASSWORDS.values()) and TOKEN not in text



def test_the_audit_log_of_one_user_is_filtered_before_the_limit(server: PacerServer) -> None:
    for _ in range(2):
        status, _, _ = server.request("PUT", "/v2/apps/team-b/web", {"instances": 1}, headers=CALLERS["viewer"])
        assert status == 403
    for _ in range(5):
        server.request("PUT", "/v2/apps/team-b/nothing", {"instances": 0}, headers=CALLERS["deployer"])
    status, body, _ = server.request("GET", "/v2/audit?user=viewer&limit=2", headers=CALLERS["admin"])
    assert status == 200
    assert [(e["user"], e["status"], e["path"]) for e in body["entries"]] == [("viewer", 403, "/v2/apps/team-b/web")] * 2

def test_secrets_stay_out_of_the_log_and_info(server: PacerServer) -> None:
    log = (server.home.parent / f"serve-{server.port}.log").read_text()
    assert all(pw not in log for pw in PASSWORDS.values())
    _, info, _ = server.request("GET", "/v2/info", headers=CALLERS["viewer"])
    assert str(server.home.resolve()) not in json.dumps(info)


class Events:
    """/v2/events read with credentials, in a thread."""

    def __init__(self, server: PacerServer, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.conn.request("GET", "/v2/events?event_type=api_post_event",
                          headers={"Accept": "text/event-stream", **headers})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
        except Exception:  # closed by the test
            pass

    def close(self) -> None:
        self.conn.close()


def test_events_show_only_what_the_caller_may_view(server: PacerServer) -> None:
    viewer, admin = Events(server, CALLERS["viewer"]), Events(server, CALLERS["admin"])
    try:
        time.sleep(0.3)
        for team in ("team-b", "team-a"):
            status, _, _ = server.request("PUT", f"/v2/apps/{team}/web?force=true", {"instances": 1},
                                          headers=CALLERS["admin"])
            assert status == 200
        wait_until(lambda: len(admin.events) >= 2, timeout=10, what="the admin's events")
        wait_until(lambda: viewer.events, timeout=10, what="the viewer's event")
        time.sleep(0.3)
        assert {e["appDefinition"]["id"] for e in viewer.events} == {"/team-a/web"}
        assert {e["appDefinition"]["id"] for e in admin.events} >= {"/team-a/web", "/team-b/web"}
    finally:
        viewer.close()
        admin.close()


def test_the_private_listener_refuses_other_processes(server: PacerServer) -> None:
    """The in-process services' listener: a loopback port of the server that is not --listen's."""
    assert server.proc is not None
    ports = _listening_ports(server.proc.pid) - {server.port}
    assert ports, "no private listener found"
    for port in ports:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/v2/apps", headers=CALLERS["admin"])
        response = conn.getresponse()
        assert response.status == 403 and b"in-process" in response.read()
        conn.close()


def _listening_ports(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes and fields[1].startswith("0100007F:"):
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_the_in_process_autoscaler_reaches_the_api(server: PacerServer) -> None:
    """The built-in autoscaler is admin through the private listener: registering a policy for an
    app makes it read the app (an error would show in its status)."""
    status, body, _ = server.request("PUT", "/v2/autoscaler/policies/team-a/web",
                                     {"metric": "cpu", "target": 50, "min": 1, "max": 2}, headers=CALLERS["admin"])
    assert status in (200, 201), body
    def cycled() -> dict[str, Any] | None:
        status, body, _ = server.request("GET", "/v2/autoscaler/status", headers=CALLERS["admin"])
        return body if status == 200 and body["cycles"] >= 2 else None
    body = wait_until(cycled, timeout=20, what="two autoscaler cycles")
    assert body["errors"] == 0, body["lastError"]
    server.request("DELETE", "/v2/autoscaler/policies/team-a/web", headers=CALLERS["admin"])


def test_sighup_reloads_the_auth_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = auth_file(tmp_path / "auth.toml")
    pacer = PacerServer(home, "--auth-file", str(path)).start()
    try:
        late = basic("late", "late-pw")
        assert pacer.request("GET", "/v2/apps", headers=late)[0] == 401
        auth_file(path, f'[users.late]\npassword = "{hash_password("late-pw")}"\nroles = ["viewer on /**"]\n')
        assert pacer.proc is not None
        pacer.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: pacer.request("GET", "/v2/apps", headers=late)[0] == 200, timeout=10,
                   what="the new user to be accepted")
        path.write_text("not toml [")
        pacer.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert pacer.proc.poll() is None
        assert pacer.request("GET", "/v2/apps", headers=late)[0] == 200     # a broken file changes nothing
    finally:
        pacer.stop()
        kill_task_processes(home)


def test_marathon_python_with_basic_auth(server: PacerServer) -> None:
    import collections
    import collections.abc
    for name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
        setattr(collections, name, getattr(collections.abc, name))
    from marathon import MarathonClient
    from marathon.exceptions import MarathonHttpError
    from marathon.models import MarathonApp

    deployer = MarathonClient(server.url, username="deployer", password=PASSWORDS["deployer"], timeout=10)
    assert deployer.get_info().name == "pacer"
    assert {a.id.split("/")[1] for a in deployer.list_apps()} == {"team-a"}
    created = deployer.create_app("/team-a/mp", MarathonApp(cmd="sleep 1000", cpus=0.01, mem=8, instances=0))
    assert created.id == "/team-a/mp"
    assert deployer.get_app("/team-a/mp").instances == 0
    deployer.scale_app("/team-a/mp", 0, force=True)
    with pytest.raises(MarathonHttpError) as refused:
        deployer.create_app("/team-b/mp", MarathonApp(cmd="sleep 1000", cpus=0.01, mem=8, instances=0))
    assert refused.value.status_code == 403
    wrong = MarathonClient(server.url, username="deployer", password="wrong", timeout=10)
    with pytest.raises(MarathonHttpError) as unauthorized:
        wrong.list_apps()
    assert unauthorized.value.status_code == 401
    deployer.delete_app("/team-a/mp", force=True)


def _serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacer.cli", "serve", "--home", str(tmp_path / "home"),
                           "--haproxy-bridge", "off", *flags], cwd=REPO, capture_output=True, text=True, timeout=30)


def test_a_public_address_without_authentication_is_refused(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--listen", f"0.0.0.0:{free_port()}")
    assert done.returncode == 2
    assert "--auth-file" in done.stderr and "--http-credentials" in done.stderr and "--insecure" in done.stderr
    assert not (tmp_path / "home").exists()        # refused before anything was set up


@pytest.mark.parametrize("flags, fragment", [
    (("--tls-cert", "/nonexistent.pem"), "--tls-cert and --tls-key go together"),
    (("--auth-file", "/nonexistent.toml"), "--auth-file /nonexistent.toml: cannot read it"),
    (("--http-credentials", "nopassword"), "--http-credentials must be USER:PASSWORD"),
    (("--tls-ca-file", "/nonexistent.pem"), "--tls-ca-file verifies the leader's certificate when the API is served "
                                            "over HTTPS: give --tls-cert and --tls-key too"),
])
def test_security_flag_errors_name_the_flag(tmp_path: Path, flags: tuple[str, ...], fragment: str) -> None:
    done = _serve(tmp_path, "--listen", f"127.0.0.1:{free_port()}", *flags)
    assert done.returncode == 2 and fragment in done.stderr, done.stderr


def test_a_public_address_with_credentials_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pacer.cli", "serve", "--listen", f"0.0.0.0:{port}",
                             "--home", str(home), "--haproxy-bridge", "off", "--http-credentials", "ops:pa55word"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def answers() -> int | None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v2/apps", headers=basic("ops", "pa55word"))
                return conn.getresponse().status
            except OSError:
                return None
        assert wait_until(answers, timeout=20, what="pacer serve on 0.0.0.0") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
        kill_task_processes(home)
    assert "pa55word" not in output


Caller = Callable[[str], Any]
