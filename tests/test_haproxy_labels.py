"""Label grammar, model rules, runtime plans, HAProxy's answers and error narrowing (all pure)."""

from __future__ import annotations

import asyncio

import pytest

from haproxy_bridge.haproxy import parse_show_proc
from haproxy_bridge.labels import LabelError, parse_labels
from haproxy_bridge.checks import health_for
from haproxy_bridge.labels import (BasicAuth, parse_auth, parse_balance, parse_bind_addr, parse_bind_options,
                                   parse_bool, parse_certs, parse_deployment_group, parse_groups, parse_mode,
                                   parse_networks, parse_path, parse_paths, parse_port, parse_vhosts, parse_weight)
from haproxy_bridge.model import build_model
from haproxy_bridge.narrow import apps_blamed, find_bad_apps
from haproxy_bridge.plan import plan_commands, plan_runtime, runtime_answer_ok
from haproxy_bridge.render import RenderSettings, render_lines
from haproxy_bridge.servers import Server

from .test_haproxy_render import app, task


@pytest.mark.parametrize("parser,value,expected", [
    (parse_groups, "external", ("external",)),
    (parse_groups, "a, b,a", ("a", "b")),
    (parse_vhosts, "A.example.com,*.b.example.com", ("a.example.com", "*.b.example.com")),
    (parse_paths, "/api  /v2/x", ("/api", "/v2/x")),
    (parse_port, "8080", 8080),
    (parse_mode, "HTTP", "http"),
    (parse_balance, "leastconn", "leastconn"),
    (parse_balance, "url_param uid", "url_param uid"),
    (parse_balance, "hdr(X-User)", "hdr(X-User)"),
    (parse_bool, "True", True),
    (parse_bool, "false", False),
    (parse_bind_addr, "127.0.0.2", "127.0.0.2"),
    (parse_bind_addr, "::1", "::1"),
    (parse_bind_addr, "*", "*"),
    (parse_bind_options, "defer-accept maxconn 10 alpn h2,http/1.1", ("defer-accept", "maxconn", "10", "alpn", "h2,http/1.1")),
    (parse_weight, "-12", -12),
    (parse_certs, "/etc/ssl/a.pem,/etc/ssl/b.pem", ("/etc/ssl/a.pem", "/etc/ssl/b.pem")),
    (parse_auth, "My realm:alice:$6$abcdefgh$Z7KfoKnKT/SZrzo5.", BasicAuth("My realm", "alice", "$6$abcdefgh$Z7KfoKnKT/SZrzo5.")),
    (parse_auth, "r:bob:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o", BasicAuth("r", "bob", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o")),
    (parse_path, "/legacy/", "/legacy"),
    (parse_path, "/", "/"),
    (parse_networks, "10.0.0.0/8  127.0.0.1 ::1 192.168.1.7/24", ("10.0.0.0/8", "127.0.0.1", "::1", "192.168.1.0/24")),
    (parse_deployment_group, "/shop", "shop"),
    (parse_deployment_group, "team/shop-v2", "team/shop-v2"),
])
def test_good_values(parser, value, expected) -> None:
    assert parser("HAPROXY_0_X", value) == expected


@pytest.mark.parametrize("parser,value,why", [
    (parse_vhosts, "a.example.com\n  bind :22", "newline"),
    (parse_vhosts, "a.example.com\r", "newline"),
    (parse_vhosts, "a.example.com b.example.com", "not a host name"),
    (parse_vhosts, 'a"b.com', "'\"'"),
    (parse_vhosts, "a.com,", "list"),
    (parse_vhosts, "exa_mple.com#x", "'#'"),
    (parse_vhosts, "caf\u00e9.com", "non-ASCII"),
    (parse_paths, "api", "path prefix"),
    (parse_paths, "/a'b", "\"'\""),
    (parse_paths, "/a\tb", "control"),
    (parse_paths, "/a }", "path prefix"),
    (parse_port, "0", "port number"),
    (parse_port, "65536", "port number"),
    (parse_port, "80 ", None),
    (parse_mode, "health", "'tcp' or 'http'"),
    (parse_balance, "roundrobin\nserver x 1.2.3.4:22", "newline"),
    (parse_balance, "url_param a b", "is not one of"),
    (parse_bool, "yes", "'true' or 'false'"),
    (parse_bind_addr, "localhost", "IP address"),
    (parse_bind_addr, "127.0.0.1:80", "IP address"),
    (parse_bind_options, "ssl crt /etc/shadow", "not allowed"),
    (parse_bind_options, "maxconn", "needs a valid value"),
    (parse_bind_options, "maxconn ten", "needs a valid value"),
    (parse_bind_options, "accept-proxy\nlisten x", "newline"),
    (parse_weight, "1e3", "integer"),
    (parse_weight, "5000", "integer"),
    (parse_certs, "relative.pem", "absolute path"),
    (parse_certs, "/etc/../x.pem", "plain absolute"),
    (parse_groups, "a b", "group name"),
    (parse_groups, "$HOME", "'$'"),
    (parse_auth, "realm:alice:s3cret", "crypt(3) hash"),
    (parse_auth, "realm:alice", "realm:user:password-hash"),
    (parse_auth, "realm:al:ice:$6$abcdefgh$Z7Kf", "realm:user:password-hash"),
    (parse_auth, "realm:al ice:$6$abcdefgh$Z7KfoKnKT", "user"),
    (parse_auth, ":alice:$6$abcdefgh$Z7KfoKnKT", "realm"),
    (parse_auth, 'r"x:alice:$6$abcdefgh$Z7KfoKnKT', "'\"'"),
    (parse_auth, "realm:alice:$6$abcdefgh$Z7Kf\n  bind :22", "'\\n'"),
    (parse_path, "/a b", "spaces"),
    (parse_path, "relative", "path starting with '/'"),
    (parse_networks, "10.0.0.0/33", "IP address or network"),
    (parse_networks, "localhost", "IP address or network"),
    (parse_networks, "", "empty"),
    (parse_deployment_group, "a b", "spaces"),
    (parse_deployment_group, "a//b", "group name"),
])
def test_bad_values_name_the_label(parser, value, why) -> None:
    if why is None:          # trailing spaces are trimmed, not fatal
        parser("HAPROXY_0_X", value)
        return
    with pytest.raises(LabelError) as err:
        parser("HAPROXY_0_X", value)
    assert "HAPROXY_0_X" in str(err.value) and why in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_and_template_labels_are_ignored_with_a_warning() -> None:
    parsed = parse_labels({"HAPROXY_0_FRONTEND_HEAD": "frontend x\n bind :22", "HAPROXY_0_HTTP_BACKEND_REDIR": "/x",
                           "HAPROXY_DEPLOYMENT_COLOUR": "blue", "OTHER": "x\ny", "HAPROXY_0_VHOST": "a.com",
                           "HAPROXY_0_USE_HSTS": "true", "HAPROXY_DEPLOYMENT_GROUP": "g"})
    assert parsed.errors == ()
    assert len(parsed.warnings) == 3
    assert any("template overrides" in w for w in parsed.warnings)
    assert parsed.port(0).vhosts == ("a.com",) and parsed.port(0).hsts and parsed.deployment_group == "g"


def test_non_string_label_value_rejects() -> None:
    assert parse_labels({"HAPROXY_0_PORT": 80}).errors == ("HAPROXY_0_PORT: value must be a string",)


def test_conflicts_in_a_model() -> None:
    apps = [
        app("/a", [10000], {}, [task("a.1", 31000)]),
        app("/b", [10001], {"HAPROXY_0_PORT": "10000"}, [task("b.1", 31001)]),   # takes /a's port
        app("/c", [10002], {"HAPROXY_0_MODE": "tcp", "HAPROXY_0_VHOST": "c.com"}),
        app("/d", [18080], {}),                                                   # the bridge's own port
        app("/e", [10004], {"HAPROXY_0_STICKY": "true", "HAPROXY_0_MODE": "tcp"}),
        {"id": "/f", "labels": "nope", "portDefinitions": [{"port": 10005}]},
        {"id": "bad id with spaces", "portDefinitions": [{"port": 10006}]},
        {"id": "/g", "portDefinitions": [{"port": "x"}]},
        app("/h", [], {}),
        app("/i", [0], {}),
    ]
    model = build_model(apps, reserved={("127.0.0.1", 18080): "the bridge's HTTP frontend"}, default_bind="127.0.0.1")
    verdicts = {a.app_id: (a.state, a.reasons[0] if a.reasons else "") for a in model.apps}
    assert verdicts["/a"][0] == "included"
    assert verdicts["/b"] == ("rejected", "port 10000 (HAPROXY_0_PORT or service port) is already bound by app /a")
    assert verdicts["/c"] == ("rejected", "HAPROXY_0_VHOST needs http mode, but HAPROXY_0_MODE is tcp")
    assert "the bridge's HTTP frontend" in verdicts["/d"][1]
    assert verdicts["/e"][1].startswith("HAPROXY_0_STICKY needs http mode")
    assert verdicts["/f"] == ("rejected", "labels is not an object")
    assert verdicts["bad id with spaces"][0] == "rejected"
    assert verdicts["/g"] == ("rejected", "service port 0 is not an integer: 'x'")
    assert verdicts["/h"] == ("skipped", "no service ports")
    assert verdicts["/i"] == ("skipped", "no service port to route")
    assert [s.backend for s in model.services] == ["a_10000"]


def test_bind_addresses_that_differ_do_not_conflict() -> None:
    apps = [app("/a", [10000], {"HAPROXY_0_BIND_ADDR": "127.0.0.2"}), app("/b", [10000], {})]
    model = build_model(apps, default_bind="127.0.0.1")
    assert all(a.state == "included" for a in model.apps)
    apps = [app("/a", [10000], {"HAPROXY_0_BIND_ADDR": "*"}), app("/b", [10000], {})]
    assert build_model(apps, default_bind="127.0.0.1").app("/b").state == "rejected"


def test_a_claimed_vhost_is_not_shared_unless_both_apps_opt_in() -> None:
    apps = [app("/a", [10000], {"HAPROXY_0_VHOST": "x.com"}), app("/b", [10001], {"HAPROXY_0_VHOST": "x.com"})]
    model = build_model(apps)
    assert model.app("/a").state == "included" and model.app("/a").warnings == ()
    assert model.app("/b").state == "rejected" and "belongs to /a" in model.app("/b").reasons[0]
    shared = [app(a["id"], [a["portDefinitions"][0]["port"]], {**a["labels"], "HAPROXY_DEPLOYMENT_GROUP": "x"})
              for a in apps]
    model = build_model(shared)
    assert model.app("/b").state == "included"
    assert "also routed to /a" in model.app("/b").warnings[0]


def _two_servers(ports: tuple[int, ...], **labels: str) -> list[dict]:
    return [app("/w", [10000], labels, [task(f"w.{p}", p) for p in ports])]


def test_runtime_plan_for_server_changes_only() -> None:
    live = build_model(_two_servers((31001, 31002)))
    target = build_model(_two_servers((31002, 31003)))
    plan = plan_runtime(live, target)
    assert plan is not None
    assert [s.name for _, s in plan.add] == ["w.31003"] and [s.name for _, s in plan.drain] == ["w.31001"]
    assert plan_commands(plan, target) == [
        "add server w_10000/w.31003 127.0.0.1:31003", "enable server w_10000/w.31003",
        "set server w_10000/w.31001 state drain"]
    # a label change needs a reload
    assert plan_runtime(live, build_model(_two_servers((31001, 31002), HAPROXY_0_BALANCE="leastconn"))) is None
    # static-rr cannot take dynamic servers
    rr_live = build_model(_two_servers((31001,), HAPROXY_0_BALANCE="static-rr"))
    assert plan_runtime(rr_live, build_model(_two_servers((31002,), HAPROXY_0_BALANCE="static-rr"))) is None
    # a draining server that comes back is revived, not added
    revive = plan_runtime(target, live, draining={("w_10000", "w.31001"): Server("w.31001", "127.0.0.1", 31001, "w.31001")})
    assert [s.name for _, s in revive.revive] == ["w.31001"] and not revive.add


def test_runtime_commands_for_checked_sticky_backend() -> None:
    hc = [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 2}]
    live = build_model([app("/s", [10000], {"HAPROXY_0_STICKY": "true"}, [task("s.1", 31001, alive=True)], healthChecks=hc)])
    target = build_model([app("/s", [10000], {"HAPROXY_0_STICKY": "true"},
                              [task("s.1", 31009, alive=True), task("s.2", 31002, alive=True)], healthChecks=hc)])
    plan = plan_runtime(live, target)
    assert plan_commands(plan, target) == [
        "add server s_10000/s.2 127.0.0.1:31002 check inter 2s fall 4 rise 1 observe layer4 error-limit 1 on-error mark-down", "enable health s_10000/s.2",
        "enable server s_10000/s.2", "set server s_10000/s.1 addr 127.0.0.1 port 31009",
        "enable dynamic-cookie backend s_10000"]


@pytest.mark.parametrize("command,answer,ok", [
    ("add server b/s 1.2.3.4:5", "New server registered.\n\n", True),
    ("add server b/s 1.2.3.4:5", "Already exists a server with the same name in backend.\n", False),
    ("del server b/s", "Server deleted.\n", True),
    ("del server b/s", "Only servers in maintenance mode can be deleted.\n", False),
    ("set server b/s addr 1.2.3.4 port 5", "IP changed from '1.1.1.1' to '1.2.3.4', port changed", True),
    ("set server b/s state drain", "\n", True),
    ("set server b/s state drain", "No such server.\n", False),
])
def test_runtime_answers(command: str, answer: str, ok: bool) -> None:
    assert runtime_answer_ok(command, answer) is ok


def test_parse_show_proc() -> None:
    text = ("#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
            "9148            master          4 [failed: 1]   0d00h00m41s     2.6.12\n# workers\n"
            "11588           worker          1               0d00h00m05s     2.6.12\n# old workers\n"
            "11000           worker          2               0d00h01m05s     2.6.12\n# programs\n\n")
    assert parse_show_proc(text).__dict__ == {"master_pid": 9148, "reloads": 4, "workers": (11588,),
                                              "old_workers": (11000,)}


def test_haproxy_errors_are_pinned_to_apps() -> None:
    model = build_model([app("/a", [10000], {"HAPROXY_0_SSL_CERT": "/nope.pem"}), app("/b", [10001], {})])
    lines = render_lines(model, RenderSettings())
    owners = [o for _, o in lines]
    n = next(i for i, (t, _) in enumerate(lines, 1) if "crt /nope.pem" in t)
    output = (f"[NOTICE]   (1) : haproxy version is 2.6\n[ALERT]    (1) : config : parsing [/x/haproxy.cfg:{n}] : "
              "'bind 127.0.0.1:10000' in section 'frontend' : unable to stat SSL certificate\n"
              "[ALERT]    (1) : config : Proxy 'b_10001': something else.\n")
    blamed = apps_blamed(output, owners, model)
    assert set(blamed) == {"/a", "/b"} and f":{n}]" in blamed["/a"]


def test_bisection_finds_the_bad_apps_in_few_checks() -> None:
    apps = [f"/app{i}" for i in range(64)]
    bad = {"/app7", "/app40"}
    calls = []

    async def valid(keep: frozenset[str]) -> bool:
        calls.append(keep)
        return not (keep & bad)

    assert asyncio.run(find_bad_apps(apps, valid)) == bad
    assert len(calls) <= 30
    assert asyncio.run(find_bad_apps([], valid)) == set()


def test_alias_labels_and_what_tcp_cannot_honour() -> None:
    assert parse_labels({"HAPROXY_0_PROXYPASS_PATH": "/a", "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/a/"}).errors == ()
    assert "disagrees with HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH" in parse_labels(
        {"HAPROXY_0_REVPROXY_PATH": "/a", "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": "/b"}).errors[0]
    hashed = "r:alice:$6$abcdefgh$Z7KfoKnKTSZrzo5"
    for label, value in (("AUTH", hashed), ("USE_HSTS", "true"), ("HTTP_BACKEND_PROXYPASS_PATH", "/p")):
        model = build_model([app("/t", [10000], {"HAPROXY_0_MODE": "tcp", f"HAPROXY_0_{label}": value})])
        assert model.app("/t").reasons == (f"HAPROXY_0_{label} needs http mode, but HAPROXY_0_MODE is tcp",)
    allowed = build_model([app("/t", [10000], {"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/8"})])
    assert allowed.services[0].networks_allowed == ("10.0.0.0/8",) and allowed.services[0].mode == "tcp"
    # a redirect without a vhost does nothing, and says so (even on a tcp port)
    for mode in ("http", "tcp"):
        model = build_model([app("/r", [10000], {"HAPROXY_0_MODE": mode, "HAPROXY_0_REDIRECT_TO_HTTPS": "true"})])
        assert model.app("/r").state == "included" and not model.services[0].redirect_to_https
        assert "does nothing without HAPROXY_0_VHOST" in model.app("/r").warnings[0]


@pytest.mark.parametrize("failures,fall", [(2, 3), (0, 1), (None, 4), ("3", 4), (-1, 4), (True, 4)])
def test_fall_is_max_consecutive_failures_plus_one(failures: object, fall: int) -> None:
    check: dict[str, object] = {"protocol": "HTTP", "path": "/", "portIndex": 0}
    if failures is not None:
        check["maxConsecutiveFailures"] = failures
    hc = health_for({"healthChecks": [check]}, 0, [])
    assert hc is not None and hc.fall == fall
