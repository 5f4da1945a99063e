"""Groups derived from app ids (scheduler.deploy.groups): tree JSON, GroupUpdate, scaleBy, delete."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_definitions import ValidationFailed, parse_app_definition
from scheduler.deploy.groups import (
    apply_group_update,
    delete_group,
    group_dependencies_of,
    group_rollback_version,
    group_tree,
    normalize_group_id,
    restore_group,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stored(app_id: str, version: str = "2024-01-01T00:00:00.000Z", **extra) -> dict:
    """An app as the store keeps it: canonical JSON with version stamps."""
    data = parse_app_definition({"id": app_id, "cmd": "sleep 1000", **extra}).to_json()
    data["version"] = version
    data["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": version}
    return data


def world(*ids: str) -> dict[str, dict]:
    return {i: stored(i) for i in ids}


def failure(current, group_id, update, replace=True) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        apply_group_update(current, group_id, update, replace=replace)
    return caught.value


# --- group_tree ----------------------------------------------------------------------------------

def test_tree_of_the_root():
    apps = {"/a": stored("/a", "2024-01-01T00:00:00.000Z"),
            "/prod/web": stored("/prod/web", "2024-03-01T00:00:00.000Z"),
            "/prod/db": stored("/prod/db", "2024-02-01T00:00:00.000Z"),
            "/prod/be/api": stored("/prod/be/api", "2024-01-15T00:00:00.000Z")}
    tree = group_tree(apps, version="2024-04-01T00:00:00.000Z", dependencies={"/prod/be": ["/prod/db"]})
    assert tree == {
        "id": "/",
        "apps": [apps["/a"]],
        "groups": [{
            "id": "/prod",
            "apps": [apps["/prod/db"], apps["/prod/web"]],
            "groups": [{"id": "/prod/be", "apps": [apps["/prod/be/api"]], "groups": [], "pods": [],
                        "dependencies": ["/prod/db"], "version": "2024-01-15T00:00:00.000Z"}],
            "pods": [],
            "dependencies": [],
            "version": "2024-03-01T00:00:00.000Z",
        }],
        "pods": [],
        "dependencies": [],
        "version": "2024-04-01T00:00:00.000Z",
    }
    assert tree["apps"][0] is apps["/a"]   # used as given, not copied or changed


def test_tree_of_a_subgroup_and_intermediate_groups():
    apps = world("/prod/x/y/z/app", "/other/app")
    tree = group_tree(apps, "prod/")
    assert tree is not None and tree["id"] == "/prod" and tree["apps"] == []
    chain = tree["groups"][0]
    assert chain["id"] == "/prod/x" and chain["groups"][0]["id"] == "/prod/x/y"
    assert chain["groups"][0]["groups"][0]["apps"] == [apps["/prod/x/y/z/app"]]


@pytest.mark.parametrize("group_id", ["/nothing", "/prod/web", "/pro"])
def test_tree_of_a_missing_group_is_none(group_id):
    assert group_tree(world("/prod/web"), group_id) is None


def test_empty_root_exists():
    assert group_tree({}) == {"id": "/", "apps": [], "groups": [], "pods": [], "dependencies": []}


def test_embed_flags_leave_keys_out():
    tree = group_tree(world("/prod/web", "/prod/db/pg"), "/prod", embed_apps=False)
    assert "apps" not in tree and "apps" not in tree["groups"][0]
    assert "groups" not in group_tree(world("/prod/web"), "/prod", embed_groups=False)


def test_bad_group_id_is_a_422():
    with pytest.raises(ValidationFailed):
        group_tree({}, "/Bad_Id")
    assert normalize_group_id("") == "/" and normalize_group_id("//") == "/"
    assert normalize_group_id("a/./b/") == "/a/b"


# --- apply_group_update: structure ------------------------------------------------------------

def test_post_group_with_relative_ids():
    result = apply_group_update({}, "/", {"id": "prod", "apps": [{"id": "web", "cmd": "x"}],
                                          "groups": [{"id": "db", "apps": [{"id": "pg", "cmd": "y"}]},
                                                     {"id": "/prod/cache", "apps": [{"id": "redis", "cmd": "z"}]}]},
                                replace=False)
    assert sorted(result) == ["/prod/cache/redis", "/prod/db/pg", "/prod/web"]
    assert result["/prod/web"] == parse_app_definition({"id": "/prod/web", "cmd": "x"}).to_json()


def test_url_group_is_the_base_of_the_body():
    assert sorted(apply_group_update({}, "/prod", {"apps": [{"id": "web", "cmd": "x"}]}, replace=True)) == ["/prod/web"]
    assert sorted(apply_group_update({}, "/prod", {"id": "/prod", "apps": [{"id": "web", "cmd": "x"}]},
                                     replace=True)) == ["/prod/web"]


def test_app_dependencies_resolve_against_the_group():
    result = apply_group_update({}, "/", {"id": "/prod", "apps": [
        {"id": "db", "cmd": "x"}, {"id": "web", "cmd": "x", "dependencies": ["db", "../shared"]}]}, replace=False)
    assert result["/prod/web"]["dependencies"] == ["/prod/db", "/shared"]


def test_put_replaces_given_lists_and_keeps_absent_ones():
    current = world("/prod/web", "/prod/old", "/prod/db/pg", "/prod/cache/redis", "/prod/deep/a/b", "/dev/web")
    result = apply_group_update(current, "/prod", {
        "id": "/prod",
        "apps": [{"id": "web", "cmd": "sleep 1000"}],
        "groups": [{"id": "db"}, {"id": "new", "apps": [{"id": "svc", "cmd": "x"}]}],
    }, replace=True)
    assert sorted(result) == ["/dev/web", "/prod/db/pg", "/prod/new/svc", "/prod/web"]
    assert result["/prod/db/pg"] is current["/prod/db/pg"]


def test_put_without_keys_keeps_everything():
    current = world("/prod/web", "/prod/db/pg")
    assert apply_group_update(current, "/prod", {"id": "/prod"}, replace=True) == current


def test_put_nested_group_replaces_only_its_own_apps():
    current = world("/prod/db/pg", "/prod/db/old", "/prod/db/inner/x")
    result = apply_group_update(current, "/prod", {"groups": [{"id": "db", "apps": [{"id": "pg", "cmd": "v2"}]}]},
                                replace=True)
    assert sorted(result) == ["/prod/db/inner/x", "/prod/db/pg"]
    assert result["/prod/db/pg"]["cmd"] == "v2"


def test_post_never_removes():
    current = world("/prod/web", "/prod/db/pg")
    result = apply_group_update(current, "/prod", {"apps": [{"id": "api", "cmd": "x"}], "groups": []}, replace=False)
    assert sorted(result) == ["/prod/api", "/prod/db/pg", "/prod/web"]


def test_unchanged_apps_keep_their_stored_json_and_version():
    current = world("/prod/web")
    body = {"id": "/prod", "apps": [{"id": "web", "cmd": "sleep 1000", "version": "2030-01-01T00:00:00.000Z"}]}
    result = apply_group_update(current, "/", body, replace=True)
    assert result["/prod/web"] is current["/prod/web"]
    changed = apply_group_update(current, "/", {"id": "/prod", "apps": [{"id": "web", "cmd": "sleep 1000",
                                                                         "instances": 2}]}, replace=True)
    assert changed["/prod/web"]["instances"] == 2 and "versionInfo" not in changed["/prod/web"]


def test_input_is_not_mutated():
    current = world("/prod/web")
    snapshot = {k: dict(v) for k, v in current.items()}
    body = {"id": "/prod", "apps": [{"id": "web", "cmd": "changed"}]}
    apply_group_update(current, "/", body, replace=True)
    apply_group_update(current, "/prod", {"scaleBy": 2}, replace=True)
    assert current == snapshot and body == {"id": "/prod", "apps": [{"id": "web", "cmd": "changed"}]}


# --- apply_group_update: scaleBy and version --------------------------------------------------

@pytest.mark.parametrize("instances, factor, expected", [
    (3, 1.5, 5), (2, 2, 4), (3, 0.5, 2), (4, 0, 0), (1, 0.01, 1), (100, 0.55, 55), (0, 3, 0), (7, 1, 7),
])
def test_scale_by_rounds_up(instances, factor, expected):
    current = {"/prod/web": stored("/prod/web", instances=instances), "/dev/web": stored("/dev/web", instances=3)}
    result = apply_group_update(current, "/prod", {"scaleBy": factor}, replace=True)
    assert result["/prod/web"]["instances"] == expected
    assert result["/dev/web"] is current["/dev/web"]


def test_scale_by_covers_nested_groups_and_may_name_the_group():
    current = {"/prod/a": stored("/prod/a", instances=2), "/prod/x/b": stored("/prod/x/b", instances=3)}
    result = apply_group_update(current, "/", {"id": "/prod", "scaleBy": 2}, replace=True)
    assert (result["/prod/a"]["instances"], result["/prod/x/b"]["instances"]) == (4, 6)


@pytest.mark.parametrize("body, message", [
    ({"scaleBy": 2, "apps": []}, "not allowed in conjunction with other properties."),
    ({"scaleBy": 2, "dependencies": ["/x"]}, "not allowed in conjunction with other properties."),
    ({"scaleBy": -1}, "got -1, expected 0 or more"),
    ({"scaleBy": "2"}, "must be a number"),
    ({"scaleBy": True}, "must be a number"),
])
def test_scale_by_errors(body, message):
    assert failure(world("/prod/web"), "/prod", body).messages("/scaleBy") == [message]


def test_version_bodies_are_rollbacks():
    assert group_rollback_version({"id": "/prod", "version": "2024-01-01T00:00:00.000Z"}) == "2024-01-01T00:00:00.000Z"
    assert group_rollback_version({"id": "/prod", "apps": []}) is None
    with pytest.raises(ValidationFailed):
        group_rollback_version({"version": "2024-01-01T00:00:00.000Z", "apps": []})
    with pytest.raises(ValueError):
        apply_group_update({}, "/prod", {"version": "2024-01-01T00:00:00.000Z"}, replace=True)


def test_restore_group():
    current = world("/prod/web", "/prod/new", "/dev/web")
    snapshot = world("/prod/web", "/prod/old", "/dev/other")
    snapshot["/prod/web"]["cmd"] = "old command"
    result = restore_group(current, "/prod", snapshot)
    assert sorted(result) == ["/dev/web", "/prod/old", "/prod/web"]
    assert result["/prod/web"]["cmd"] == "old command"


# --- apply_group_update: validation paths -----------------------------------------------------

def test_app_errors_carry_marathon_paths():
    err = failure({}, "/", {"id": "/prod", "apps": [{"id": "ok", "cmd": "x"}, {"id": "bad", "cmd": "x", "cpus": -1}],
                            "groups": [{"id": "a", "apps": []},
                                       {"id": "b", "apps": [{"id": "c", "cmd": ""}]}]})
    assert [d["path"] for d in err.details] == ["/apps(1)/cpus", "/groups(1)/apps(0)/cmd"]


def test_app_outside_its_group():
    err = failure({}, "/", {"id": "/prod", "apps": [{"id": "/dev/web", "cmd": "x"}]})
    assert err.messages("/apps(0)/id") == ["Identifier is not child of '/prod'"]


@pytest.mark.parametrize("body, path", [
    ({"id": "/prod", "groups": [{"id": "/dev"}]}, "/groups(0)/id"),
    ({"id": "/prod", "groups": [{"apps": []}]}, "/groups(0)/id"),
    ({"id": "/prod", "groups": ["db"]}, "/groups(0)"),
    ({"id": "/prod", "groups": {"id": "db"}}, "/groups"),
    ({"id": "/prod", "apps": {"id": "web"}}, "/apps"),
    ({"id": "/prod", "apps": ["web"]}, "/apps(0)"),
    ({"id": "/prod", "apps": [{"cmd": "x"}]}, "/apps(0)/id"),
    ({"id": "/prod", "apps": [{"id": "web", "cmd": "x"}, {"id": "/prod/web", "cmd": "y"}]}, "/apps(1)/id"),
    ({"id": "/prod", "groups": [{"id": "db"}, {"id": "/prod/db"}]}, "/groups(1)/id"),
    ({"id": "/prod", "dependencies": ["/Not_Valid"]}, "/dependencies(0)"),
    ({"id": "/prod", "dependencies": "/db"}, "/dependencies"),
    ({"id": "/prod", "enforceRole": "yes"}, "/enforceRole"),
    ({"id": "/prod", "groups": [{"id": "db", "enforceRole": True}]}, "/groups(0)/enforceRole"),
    ({"id": "/prod", "groups": [{"id": "db", "scaleBy": 2}]}, "/groups(0)/scaleBy"),
    ({"id": "/prod", "groups": [{"id": "db", "version": "2024-01-01T00:00:00.000Z"}]}, "/groups(0)/version"),
    ({"id": "/prod/tasks"}, "/id"),
    ({"id": 7}, "/id"),
])
def test_group_body_errors(body, path):
    err = failure({}, "/", body)
    assert [d["path"] for d in err.details] == [path]


def test_all_errors_at_once():
    err = failure({}, "/", {"id": "/prod", "enforceRole": 1, "apps": [{"id": "a", "cpus": -1, "cmd": "x"}],
                            "groups": [{"id": "/elsewhere"}]})
    assert [d["path"] for d in err.details] == ["/apps(0)/cpus", "/enforceRole", "/groups(0)/id"]


def test_top_level_enforce_role_is_accepted():
    assert apply_group_update({}, "/", {"id": "/prod", "enforceRole": True}, replace=True) == {}


def test_app_and_group_may_not_share_an_id():
    err = failure(world("/prod/db"), "/prod", {"groups": [{"id": "db", "apps": [{"id": "pg", "cmd": "x"}]}]})
    assert err.messages("/groups(0)/apps(0)/id") == [
        "Groups and Applications may not have the same identifier: /prod/db"]
    err = failure(world("/prod/db/pg"), "/prod", {"apps": [{"id": "db", "cmd": "x"}]}, replace=False)
    assert err.messages("/apps(0)/id") == ["Groups and Applications may not have the same identifier: /prod/db"]


def test_body_must_be_an_object():
    assert failure({}, "/", ["x"]).messages("/") == ["must be a JSON object"]  # type: ignore[arg-type]


def test_group_dependencies_of():
    body = {"id": "product", "dependencies": ["/infra"], "groups": [
        {"id": "database"}, {"id": "service", "dependencies": ["../database"]},
        {"id": "frontend", "dependencies": ["/product/service"], "groups": [{"id": "x", "dependencies": []}]}]}
    assert group_dependencies_of("/", body) == {
        "/product": ["/infra"], "/product/service": ["/product/database"],
        "/product/frontend": ["/product/service"], "/product/frontend/x": []}


# --- delete_group ------------------------------------------------------------------------------

def test_delete_group():
    current = world("/prod/web", "/prod/db/pg", "/production/web", "/dev/web")
    assert sorted(delete_group(current, "/prod")) == ["/dev/web", "/production/web"]
    assert delete_group(current, "/") == {}
    assert delete_group(current, "/prod/web") == current   # an app is not a group


# --- properties ----------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(["a", "b", "c"])
APP_IDS = st.lists(st.lists(SEGMENTS, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
                   max_size=8, unique=True).map(
    lambda ids: [i for i in ids if not any(o.startswith(i + "/") for o in ids)])   # no app/group clashes


def _flatten(tree: dict) -> list[str]:
    return [a["id"] for a in tree.get("apps", [])] + [a for g in tree.get("groups", []) for a in _flatten(g)]


def _as_body(tree: dict) -> dict:
    strip = ("version", "versionInfo")
    return {"id": tree["id"], "apps": [{k: v for k, v in a.items() if k not in strip} for a in tree["apps"]],
            "groups": [_as_body(g) for g in tree["groups"]]}


@SETTINGS
@given(ids=APP_IDS, group=st.sampled_from(["/", "/a", "/b", "/a/b", "/c/c"]))
def test_tree_and_put_round_trip(ids, group):
    current = {i: stored(i) for i in ids}
    tree = group_tree(current, group)
    beneath = sorted(i for i in ids if group == "/" or i.startswith(group + "/"))
    if tree is None:
        assert not beneath and group != "/"
        return
    assert sorted(_flatten(tree)) == beneath
    # PUT of the group exactly as GET shows it changes nothing, not even versions
    assert apply_group_update(current, group, _as_body(tree), replace=True) == current
    # PUT of an empty group removes what is beneath it and nothing else
    emptied = apply_group_update(current, group, {"apps": [], "groups": []}, replace=True)
    assert emptied == delete_group(current, group)
    assert sorted(set(current) - set(emptied)) == beneath
