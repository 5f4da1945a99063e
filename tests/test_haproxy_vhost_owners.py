"""Vhost ownership: the app that claimed a vhost first keeps it — against a later app with a higher
BACKEND_WEIGHT, an id that sorts first, a wildcard or a bare path, across restarts of the bridge
and config changes of the owner; two apps share one only through the same
HAPROXY_DEPLOYMENT_GROUP. The rules are checked pure, then with real requests through HAProxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from haproxy_bridge.config_files import ConfigFiles
from haproxy_bridge.model import build_model
from haproxy_bridge.ownership import AppClaims, Claim, record_from_json, record_json, route_keys, settle

from .haproxy_support import (LoadLoop, app_json, bridge_options, free_port, get,
                              needs_haproxy, running_bridge, wait_for)
from .test_haproxy_render import app

JAN, FEB, MAR = "2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"


def claims(app_id: str, *keys: tuple[str, str], since: str | None = None, group: str | None = None) -> AppClaims:
    return AppClaims(app_id, frozenset(keys), since, group)


V = ("victim.test", "")


# -- the rules (pure) ---------------------------------------------------------------------------
def test_first_claim_by_config_time_then_id_when_nothing_is_recorded() -> None:
    record, losers = settle([claims("/b", V, since=JAN), claims("/a", V, since=FEB)], (), {})
    assert record[V] == Claim("/b", JAN) and set(losers) == {"/a"}
    assert "belongs to /b, which claimed it first" in losers["/a"]
    record, losers = settle([claims("/b", V), claims("/a", V)], (), {})
    assert record[V].app_id == "/a" and set(losers) == {"/b"}
    # an unreadable time sorts after a readable one
    assert settle([claims("/a", V, since="yesterday"), claims("/b", V, since=FEB)], (), {})[0][V].app_id == "/b"


def test_the_record_wins_over_a_later_config_change_of_the_owner() -> None:
    record = {V: Claim("/victim", JAN)}
    out, losers = settle([claims("/victim", V, since=MAR), claims("/attacker", V, since=FEB)], (), record)
    assert out[V] == Claim("/victim", JAN) and set(losers) == {"/attacker"}


def test_the_record_is_released_only_when_the_owner_stops_claiming() -> None:
    record = {V: Claim("/victim", JAN)}
    # labels unreadable (a bad label, malformed JSON): the vhost stays the victim's
    out, losers = settle([claims("/attacker", V, since=FEB)], ["/victim"], record)
    assert out[V].app_id == "/victim" and set(losers) == {"/attacker"}
    # the victim dropped the vhost (or was deleted): the next claimant gets it
    out, losers = settle([claims("/victim"), claims("/attacker", V, since=FEB)], (), record)
    assert out[V] == Claim("/attacker", FEB) and losers == {}
    assert settle([], (), record) == ({}, {})


def test_deployment_group_sharing_needs_both_apps() -> None:
    both = [claims("/blue", V, since=JAN, group="shop"), claims("/green", V, since=FEB, group="shop")]
    out, losers = settle(both, (), {})
    assert out[V] == Claim("/blue", JAN, "shop") and losers == {}
    assert set(settle([claims("/blue", V, since=JAN), claims("/green", V, since=FEB, group="shop")], (), {})[1]) \
        == {"/green"}
    assert set(settle([claims("/blue", V, since=JAN, group="a"), claims("/green", V, since=FEB, group="b")], (),
                      {})[1]) == {"/green"}
    # the owner leaves the group: the other one is out again; the owner goes away: the other owns it
    out, losers = settle([claims("/blue", V, since=JAN), both[1]], (), {V: Claim("/blue", JAN, "shop")})
    assert out[V] == Claim("/blue", JAN, None) and set(losers) == {"/green"}
    assert settle([both[1]], (), {V: Claim("/blue", JAN, "shop")})[0][V] == Claim("/green", FEB, "shop")


def test_route_keys() -> None:
    assert route_keys(["a.test"], []) == {("a.test", "")}
    assert route_keys(["a.test"], ["/"]) == {("a.test", "")}            # '/' is the whole host
    assert route_keys(["a.test", "b.test"], ["/x", "/y"]) == {("a.test", "/x"), ("a.test", "/y"),
                                                              ("b.test", "/x"), ("b.test", "/y")}
    assert route_keys([], ["/"]) == {("", "/")} and route_keys([], []) == set()


def test_record_json_roundtrip_and_tolerance(tmp_path: Path) -> None:
    record = {V: Claim("/victim", JAN), ("", "/static"): Claim("/cdn", None, "g")}
    assert record_from_json(json.loads(json.dumps(record_json(record)))) == record
    assert record_from_json([{"host": "a"}, "x", {"host": "", "path": "", "app": "/a"},
                             {"host": "h", "path": "", "app": "/a", "since": 5}]) == {}
    files = ConfigFiles(tmp_path / "hx")
    assert files.read_owners() == {}
    files.write_owners(record)
    assert files.read_owners() == record
    files.owners.write_text("{not json")
    assert files.read_owners() == {} and files.owners.with_name("vhost-owners.json.bad").exists()


def test_model_rejects_the_later_claimant_whatever_its_weight_or_id() -> None:
    victim = app("/victim", [10000], {"HAPROXY_0_VHOST": "victim.test"}, versionInfo={"lastConfigChangeAt": JAN})
    attacker = app("/attacker", [10001], {"HAPROXY_0_VHOST": "VICTIM.test", "HAPROXY_0_BACKEND_WEIGHT": "1000"},
                   versionInfo={"lastConfigChangeAt": FEB})
    model = build_model([attacker, victim])
    assert model.app("/victim").state == "included" and model.app("/victim").warnings == ()
    assert model.app("/attacker").state == "rejected" and "belongs to /victim" in model.app("/attacker").reasons[0]
    assert [s.app_id for s in model.services] == ["/victim"]
    assert dict(model.owners) == {V: Claim("/victim", JAN)}
    # the record (here: the previous model's) outlives a config change that makes the victim newer
    newer = dict(victim, versionInfo={"lastConfigChangeAt": MAR})
    assert build_model([attacker, newer], previous=model).app("/attacker").state == "rejected"
    assert build_model([attacker, newer]).app("/victim").state == "rejected"     # no record: time decides
    # a broken label on the victim does not free its vhost
    broken = dict(victim, labels={**victim["labels"], "HAPROXY_0_PORT": "nope"})
    again = build_model([attacker, broken], previous=model)
    assert again.app("/victim").state == "rejected" and again.app("/attacker").state == "rejected"


# -- with real requests -------------------------------------------------------------------------




def served(opts: Any, host: str, n: int = 12, path: str = "/") -> dict[str, int]:
    seen: dict[str, int] = {}
    for _ in range(n):
        status, body, _ = get(f"http://127.0.0.1:{opts.http_port}{path}", host=host)
        key = body.split(" ")[0] if status == 200 else f"HTTP {status}"
        seen[key] = seen.get(key, 0) + 1
    return seen


def states(bt: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {a["id"]: (a["state"], tuple(a["reasons"]) + tuple(a["warnings"])) for a in bt.status()["apps"]}


@needs_haproxy
@pytest.mark.timeout(120)
def test_the_victim_keeps_its_vhost_against_weight_id_wildcard_and_path(backends, master, tmp_path: Path) -> None:
    b_victim, b_thief, b_wild, b_any = (backends.start(n) for n in ("victim", "thief", "wild", "any"))
    victim = app_json("/victim", free_port(), [b_victim], labels={"HAPROXY_0_VHOST": "victim.test"}, changed_at=JAN)
    master.apps = [victim]
    opts = bridge_options(tmp_path / "hx", master.url)
    with running_bridge(opts) as bt:
        assert served(opts, "victim.test") == {"name=victim": 12}
        attackers = [   # each sorts before /victim and outweighs it
            app_json("/a-thief", free_port(), [b_thief], changed_at=FEB, labels={
                "HAPROXY_0_VHOST": "victim.test", "HAPROXY_0_BACKEND_WEIGHT": "1000"}),
            app_json("/a-wild", free_port(), [b_wild], changed_at=FEB, labels={
                "HAPROXY_0_VHOST": "*.test", "HAPROXY_0_BACKEND_WEIGHT": "1000"}),
            app_json("/a-any", free_port(), [b_any], changed_at=FEB, labels={
                "HAPROXY_0_MODE": "http", "HAPROXY_0_PATH": "/", "HAPROXY_0_BACKEND_WEIGHT": "1000"}),
        ]
        reloads = bt.status()["counters"]["reloads"]
        with LoadLoop(f"http://127.0.0.1:{opts.http_port}/", threads=2, host="victim.test", max_seconds=30) as load:
            master.apps = [*attackers, victim]
            wait_for(lambda: bt.status()["counters"]["reloads"] > reloads, 10, "the attackers' reload")
            wait_for(lambda: "/a-any" in bt.bridge.state.live_config, 10, "the reload to be live")
            result = load.stop()
        assert result.failures == [] and set(result.seen) == {"name=victim"}, (result.seen, result.failures[:3])
        assert served(opts, "victim.test") == {"name=victim": 12}
        verdicts = states(bt)
        assert verdicts["/victim"] == ("included", ())
        assert verdicts["/a-thief"][0] == "rejected" and "belongs to /victim" in verdicts["/a-thief"][1][0]
        # the wildcard and the bare path are other claims: they get what the victim does not claim
        assert verdicts["/a-wild"][0] == verdicts["/a-any"][0] == "included"
        assert served(opts, "other.test", 4) == {"name=wild": 4}
        assert served(opts, "elsewhere.example", 4) == {"name=any": 4}
        owners = {(o["host"], o["path"]): o["app"] for o in bt.status()["vhostOwners"]}
        assert owners[V] == "/victim"


@needs_haproxy
@pytest.mark.timeout(120)
def test_a_restart_of_the_bridge_hands_nothing_over(backends, master, tmp_path: Path) -> None:
    b_victim, b_thief = backends.start("victim"), backends.start("thief")
    sp_victim, sp_thief = free_port(), free_port()
    cfg = tmp_path / "hx"
    master.apps = [app_json("/victim", sp_victim, [b_victim], labels={"HAPROXY_0_VHOST": "victim.test"},
                            changed_at=JAN)]
    opts = bridge_options(cfg, master.url)
    with running_bridge(opts):
        assert served(opts, "victim.test", 4) == {"name=victim": 4}
    assert json.loads((cfg / "vhost-owners.json").read_text())["owners"][0]["app"] == "/victim"
    # while the bridge is down: the victim deploys a new version (its config time is now the
    # newest), and a thief with an older config time claims the vhost
    master.apps = [
        app_json("/victim", sp_victim, [b_victim], labels={"HAPROXY_0_VHOST": "victim.test"}, changed_at=MAR),
        app_json("/thief", sp_thief, [b_thief], changed_at=FEB, labels={"HAPROXY_0_VHOST": "victim.test",
                                                                        "HAPROXY_0_BACKEND_WEIGHT": "1000"}),
    ]
    opts = bridge_options(cfg, master.url)
    with running_bridge(opts) as bt:
        assert served(opts, "victim.test") == {"name=victim": 12}
        assert states(bt)["/thief"][0] == "rejected"
    # the record is what decided: without it, the older configuration would win
    (cfg / "vhost-owners.json").unlink()
    opts = bridge_options(cfg, master.url)
    with running_bridge(opts):
        assert served(opts, "victim.test", 4) == {"name=thief": 4}


@needs_haproxy
@pytest.mark.timeout(120)
def test_blue_green_share_a_vhost_only_in_the_same_deployment_group(backends, master, tmp_path: Path) -> None:
    b_blue, b_green = backends.start("blue"), backends.start("green")
    sp_blue, sp_green = free_port(), free_port()

    def blue_green(green_group: str | None) -> list[dict[str, Any]]:
        green_labels = {"HAPROXY_0_VHOST": "shop.test", "HAPROXY_0_BACKEND_WEIGHT": "10"}
        if green_group:
            green_labels["HAPROXY_DEPLOYMENT_GROUP"] = green_group
        return [app_json("/shop-blue", sp_blue, [b_blue], changed_at=JAN,
                         labels={"HAPROXY_0_VHOST": "shop.test", "HAPROXY_DEPLOYMENT_GROUP": "shop"}),
                app_json("/shop-green", sp_green, [b_green], changed_at=FEB, labels=green_labels)]

    master.apps = blue_green(None)
    opts = bridge_options(tmp_path / "hx", master.url)
    with running_bridge(opts) as bt:
        assert served(opts, "shop.test", 4) == {"name=blue": 4}
        assert states(bt)["/shop-green"][0] == "rejected"
        master.apps = blue_green("other")
        seen = master.requests
        wait_for(lambda: master.requests >= seen + 2 and bt.status()["lastUpdate"], 10, "a refresh on the new labels")
        assert states(bt)["/shop-green"][0] == "rejected" and served(opts, "shop.test", 4) == {"name=blue": 4}
        # both opted in: the higher weight takes the vhost, and the other app is told why it gets none
        master.apps = blue_green("shop")
        wait_for(lambda: served(opts, "shop.test", 2) == {"name=green": 2}, 10, "the cut-over to green")
        blue = states(bt)["/shop-blue"]
        assert blue[0] == "included" and "also routed to /shop-green" in blue[1][0]
        # blue retired: green owns the vhost now
        master.apps = blue_green("shop")[1:]
        wait_for(lambda: [o["app"] for o in bt.status()["vhostOwners"]] == ["/shop-green"], 10, "the hand-over")
        assert served(opts, "shop.test", 4) == {"name=green": 4}
