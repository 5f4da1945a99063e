"""Deployment plans (scheduler.deploy.plan): Marathon's DeploymentPlan.apply as a value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_definitions import AppDefinition, ValidationFailed, parse_app_definition
from scheduler.deploy.plan import (
    DependencyCycle,
    DeploymentAction,
    DeploymentPlan,
    DeploymentStep,
    build_plan,
    conflicting_deployments,
    dependency_graph,
    dependency_levels,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def app(app_id: str, cmd: str = "sleep 1000", instances: int = 1, deps: tuple[str, ...] = (), **extra) -> AppDefinition:
    return parse_app_definition({"id": app_id, "cmd": cmd, "instances": instances, "dependencies": list(deps), **extra})


def apps(*definitions: AppDefinition) -> dict[str, AppDefinition]:
    return {a.id: a for a in definitions}


def plan(original, target, **kwargs) -> DeploymentPlan:
    return build_plan(original, target, plan_id="p", version="2024-01-01T00:00:00.000Z", **kwargs)


def shape(p: DeploymentPlan) -> list[list[tuple]]:
    return [[(a.action, a.app_id, a.scale_to) for a in step.actions] for step in p.steps]


# --- action per kind of change ---------------------------------------------------------------

def test_new_app_is_started_at_zero_then_scaled():
    p = plan({}, apps(app("/web", instances=3)))
    assert shape(p) == [[("StartApplication", "/web", 0)], [("ScaleApplication", "/web", 3)]]


def test_removed_app_is_stopped():
    assert shape(plan(apps(app("/web")), {})) == [[("StopApplication", "/web", None)]]


@pytest.mark.parametrize("change", [
    {"cmd": "sleep 2000"}, {"cpus": 0.5}, {"env": {"A": "1"}}, {"labels": {"x": "y"}},
    {"constraints": [["hostname", "UNIQUE"]]}, {"upgradeStrategy": {"minimumHealthCapacity": 0.5}},
    {"healthChecks": [{"protocol": "TCP"}]}, {"dependencies": ["/db"]},
])
def test_config_change_restarts(change):
    before = apps(app("/web"), app("/db"))
    after_web = parse_app_definition({"id": "/web", "cmd": "sleep 1000", **change})
    p = plan(before, {**before, "/web": after_web})
    assert shape(p) == [[("RestartApplication", "/web", None)]]


def test_instances_only_change_scales():
    assert shape(plan(apps(app("/web", instances=2)), apps(app("/web", instances=5)))) == \
        [[("ScaleApplication", "/web", 5)]]


def test_config_change_with_scale_to_zero_only_scales():
    p = plan(apps(app("/web", instances=2)), apps(app("/web", cmd="other", instances=0)))
    assert shape(p) == [[("ScaleApplication", "/web", 0)]]


def test_unchanged_apps_get_no_action_and_an_empty_plan_has_no_steps():
    same = apps(app("/web"), app("/db"))
    stamped = {k: v.model_copy(update={"version": "2024-01-01T00:00:00.000Z"}) for k, v in same.items()}
    p = plan(same, stamped)
    assert p.steps == () and p.is_empty and p.affected_app_ids == ()


def test_restart_request_restarts_an_unchanged_app():
    same = apps(app("/web"), app("/db"))
    assert shape(plan(same, same, restart=frozenset({"/web"}))) == [[("RestartApplication", "/web", None)]]


def test_restart_request_for_a_new_app_just_starts_it():
    p = plan({}, apps(app("/web")), restart=frozenset({"/web", "/gone"}))
    assert shape(p) == [[("StartApplication", "/web", 0)], [("ScaleApplication", "/web", 1)]]


def test_stop_and_start_steps_come_first_and_everything_is_sorted():
    before = apps(app("/b-old"), app("/a-old"), app("/keep", instances=1))
    after = apps(app("/keep", instances=2), app("/z-new"), app("/m-new"))
    assert shape(plan(before, after)) == [
        [("StopApplication", "/a-old", None), ("StopApplication", "/b-old", None)],
        [("StartApplication", "/m-new", 0), ("StartApplication", "/z-new", 0)],
        [("ScaleApplication", "/keep", 2), ("ScaleApplication", "/m-new", 1), ("ScaleApplication", "/z-new", 1)],
    ]


# --- dependency order --------------------------------------------------------------------------

def test_dependency_levels_longest_path_first():
    target = apps(app("/db"), app("/cache"), app("/api", deps=("/db",)), app("/web", deps=("/api", "/cache")),
                  app("/worker", deps=("/db", "/web")))
    p = plan({}, target)
    assert shape(p)[1:] == [
        [("ScaleApplication", "/cache", 1), ("ScaleApplication", "/db", 1)],
        [("ScaleApplication", "/api", 1)],
        [("ScaleApplication", "/web", 1)],
        [("ScaleApplication", "/worker", 1)],
    ]


def test_relative_dependencies_resolve_against_the_apps_group():
    web = AppDefinition(id="/prod/web", cmd="x", dependencies=["db", "../shared/auth"])
    target = {"/prod/web": web, "/prod/db": app("/prod/db"), "/shared/auth": app("/shared/auth")}
    assert shape(plan({}, target))[1:] == [
        [("ScaleApplication", "/prod/db", 1), ("ScaleApplication", "/shared/auth", 1)],
        [("ScaleApplication", "/prod/web", 1)],
    ]


def test_a_dependency_on_a_group_waits_for_every_app_in_it():
    target = apps(app("/backend/db"), app("/backend/deep/api", deps=("/backend/db",)), app("/web", deps=("/backend",)))
    assert [a.app_id for a in plan({}, target).steps[-1].actions] == ["/web"]
    assert len(plan({}, target).steps) == 4


def test_group_level_dependencies():
    target = apps(app("/product/database/pg"), app("/product/service/api"), app("/product/frontend/ui"))
    deps = {"/product/service": ["/product/database"], "/product/frontend": ["../service"]}
    assert shape(plan({}, target, group_dependencies=deps))[1:] == [
        [("ScaleApplication", "/product/database/pg", 1)],
        [("ScaleApplication", "/product/service/api", 1)],
        [("ScaleApplication", "/product/frontend/ui", 1)],
    ]


def test_group_dependency_on_nothing_is_ignored():
    p = plan({}, apps(app("/g/a")), group_dependencies={"/g": ["/gone"], "/nothing": ["/g"]})
    assert len(p.steps) == 2


def test_levels_use_the_whole_target_but_only_changed_apps_act():
    base = apps(app("/db"), app("/api", deps=("/db",)), app("/web", deps=("/api",)))
    after = {**base, "/web": app("/web", cmd="v2", deps=("/api",)), "/db": app("/db", instances=3)}
    assert shape(plan(base, after)) == [[("ScaleApplication", "/db", 3)], [("RestartApplication", "/web", None)]]


def test_cycle_is_a_422_naming_the_apps():
    target = apps(app("/a", deps=("/b",)), app("/b", deps=("/c",)), app("/c", deps=("/a",)), app("/d", deps=("/a",)))
    with pytest.raises(DependencyCycle) as caught:
        plan({}, target)
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.cycles == [("/a", "/b", "/c")]
    assert caught.value.to_body() == {"message": "Object is not valid", "details": [
        {"path": "/dependencies", "errors": ["Dependency graph has cyclic dependencies: /a -> /b -> /c -> /a"]}]}


def test_self_dependency_and_two_cycles():
    target = apps(app("/x", deps=("/x",)), app("/p", deps=("/q",)), app("/q", deps=("/p",)))
    with pytest.raises(DependencyCycle) as caught:
        plan({}, target)
    assert caught.value.cycles == [("/p", "/q"), ("/x",)]


def test_missing_dependency_of_a_new_app_is_accepted_and_ignored_for_ordering():
    """Marathon accepts a dependency on an app that does not exist yet (its batch PUT example does)."""
    p = plan({}, apps(app("/web", deps=("/db", "/cache"))))
    assert shape(p) == [[("StartApplication", "/web", 0)], [("ScaleApplication", "/web", 1)]]


def test_missing_dependency_declared_by_a_changed_app_does_not_block_its_restart():
    p = plan(apps(app("/web")), apps(app("/web", cmd="y", deps=("db",))))
    assert shape(p) == [[("RestartApplication", "/web", None)]]


def test_missing_dependency_orders_once_it_exists():
    p = plan({}, apps(app("/prod/web", deps=("db",)), app("/prod/db")))
    assert [s for s in shape(p)[1:]] == [[("ScaleApplication", "/prod/db", 1)], [("ScaleApplication", "/prod/web", 1)]]


def test_revert_keeps_group_dependency_order():
    target = apps(app("/p/db/pg"), app("/p/api/x"))
    deps = {"/p/api": ["/p/db"]}
    back = plan(target, {}, group_dependencies=deps).revert("r", "v", group_dependencies=deps)
    assert shape(back)[1:] == [[("ScaleApplication", "/p/db/pg", 1)], [("ScaleApplication", "/p/api/x", 1)]]


def test_dependency_that_went_missing_is_ignored():
    before = apps(app("/db"), app("/web", deps=("/db",)))
    after = apps(app("/web", deps=("/db",)))
    assert shape(plan(before, after)) == [[("StopApplication", "/db", None)]]
    # later: restarting or changing web otherwise still works, and so does the rollback
    changed = apps(app("/web", cmd="v2", deps=("/db",)))
    forward = plan(after, changed, restart=frozenset({"/web"}))
    assert shape(forward) == [[("RestartApplication", "/web", None)]]
    assert shape(forward.revert("r", "v")) == [[("RestartApplication", "/web", None)]]


# --- the value: JSON, revert, conflicts ----------------------------------------------------------

def test_to_json_is_marathons_shape():
    before = apps(app("/old"), app("/web", instances=1))
    p = build_plan(before, apps(app("/web", cmd="v2"), app("/new")), plan_id="d-1", version="2024-05-01T10:00:00.000Z")
    assert p.to_json() == {
        "id": "d-1",
        "version": "2024-05-01T10:00:00.000Z",
        "affectedApps": ["/new", "/old", "/web"],
        "affectedPods": [],
        "steps": [
            {"actions": [{"action": "StopApplication", "app": "/old"}]},
            {"actions": [{"action": "StartApplication", "app": "/new"}]},
            {"actions": [{"action": "ScaleApplication", "app": "/new"},
                         {"action": "RestartApplication", "app": "/web"}]},
        ],
        "totalSteps": 3,
    }


def test_plan_is_immutable_and_keeps_copies():
    source = apps(app("/web"))
    p = plan({}, source)
    source["/other"] = app("/other")
    assert "/other" not in p.target
    with pytest.raises(TypeError):
        p.target["/x"] = app("/x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.id = "other"  # type: ignore[misc]
    assert hash(p) == hash(plan({}, apps(app("/web"))))


def test_revert_goes_back_to_the_original():
    before = apps(app("/old"), app("/web", instances=2), app("/db", instances=1))
    after = apps(app("/web", cmd="v2", instances=2), app("/db", instances=3), app("/new"))
    back = plan(before, after).revert("r", "v2")
    assert (back.id, back.version) == ("r", "v2")
    assert shape(back) == [
        [("StopApplication", "/new", None)],
        [("StartApplication", "/old", 0)],
        [("ScaleApplication", "/db", 1), ("ScaleApplication", "/old", 1), ("RestartApplication", "/web", None)],
    ]


def test_revert_of_a_restart_restarts_again():
    same = apps(app("/web"))
    back = plan(same, same, restart=frozenset({"/web"})).revert("r", "v")
    assert shape(back) == [[("RestartApplication", "/web", None)]]


def test_conflicting_deployments():
    p1 = build_plan({}, apps(app("/a"), app("/b")), plan_id="p1", version="v")
    p2 = build_plan(apps(app("/c")), {}, plan_id="p2", version="v")
    p3 = build_plan(apps(app("/d")), apps(app("/d")), plan_id="p3", version="v")   # empty: locks nothing
    assert conflicting_deployments([p1, p2, p3], ["/b", "/c"]) == ["p1", "p2"]
    assert conflicting_deployments([p2, p1], iter(["/a"])) == ["p1"]
    assert conflicting_deployments([p1, p2, p3], ["/d", "/zzz"]) == []


def test_dataclasses_compare_by_value():
    assert DeploymentStep((DeploymentAction("ScaleApplication", "/a", 2),)) == \
        DeploymentStep((DeploymentAction("ScaleApplication", "/a", 2),))


# --- properties --------------------------------------------------------------------------------

IDS = [f"/g{k % 2}/a{k}" for k in range(7)]


@st.composite
def worlds(draw, acyclic: bool = True, min_instances: int = 0):
    """(original, target, restart): random apps, dependencies only on lower-numbered apps if acyclic."""
    def side(present):
        result = {}
        for k, app_id in enumerate(IDS):
            if not present[k]:
                continue
            candidates = [IDS[j] for j in range(len(IDS)) if present[j] and (j < k if acyclic else True)]
            deps = draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True)) if candidates else []
            cmd = draw(st.sampled_from(["v1", "v2"]))
            result[app_id] = app(app_id, cmd=cmd, instances=draw(st.integers(min_instances, 3)), deps=tuple(deps))
        return result
    in_original = draw(st.lists(st.booleans(), min_size=len(IDS), max_size=len(IDS)))
    in_target = draw(st.lists(st.booleans(), min_size=len(IDS), max_size=len(IDS)))
    original, target = side(in_original), side(in_target)
    for app_id in IDS:   # keep some apps identical so "unchanged" happens often
        if app_id in original and app_id in target and draw(st.booleans()):
            original[app_id] = target[app_id]
    restart = frozenset(draw(st.lists(st.sampled_from(IDS), max_size=3)))
    return original, target, restart


@SETTINGS
@given(worlds())
def test_plan_properties(world):
    original, target, restart = world
    p = plan(original, target, restart=restart)
    steps = shape(p)
    assert all(steps), "no empty steps"
    removed = sorted(set(original) - set(target))
    added = sorted(set(target) - set(original))
    rest = [s for s in steps if s[0][0] not in ("StopApplication", "StartApplication")]
    prefix = [s for s in steps if s[0][0] in ("StopApplication", "StartApplication")]
    assert prefix == [s for s in ([[("StopApplication", a, None) for a in removed]],
                                  [[("StartApplication", a, 0) for a in added]]) for s in s if s]
    position = {}
    for index, step in enumerate(rest):
        assert [a for _, a, _ in step] == sorted(a for _, a, _ in step)
        for action, app_id, scale_to in step:
            assert app_id not in position, "an app acts once"
            position[app_id] = index
            old, new = original.get(app_id), target[app_id]
            if old is None:
                assert (action, scale_to) == ("ScaleApplication", new.instances)
            elif new.instances == 0:
                assert (action, scale_to) == ("ScaleApplication", 0)
            elif old.cmd != new.cmd or old.dependencies != new.dependencies or app_id in restart:
                assert action == "RestartApplication"
            else:
                assert (action, scale_to) == ("ScaleApplication", new.instances)
    for app_id, definition in target.items():
        if app_id not in position:
            old = original.get(app_id)
            assert old is not None and app_id not in restart and old == definition
        for dep in definition.dependencies:
            if app_id in position and dep in position:
                assert position[dep] < position[app_id], "dependencies go first"
    assert p.affected_app_ids == tuple(sorted(set(position) | set(removed)))
    assert build_plan(original, target, plan_id="p", version=p.version, restart=restart) == p
    levels = _longest_paths(target)
    assert sorted(position, key=lambda a: (position[a], a)) == sorted(position, key=lambda a: (levels[a], a))
    for a in position:
        for b in position:
            assert (position[a] == position[b]) == (levels[a] == levels[b]), "one step per path length"


def _longest_paths(target: dict[str, AppDefinition]) -> dict[str, int]:
    """Reference: longest dependency path from each app, counting the app (Marathon's longestPathFromVertex)."""
    memo: dict[str, int] = {}

    def length(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((length(d) for d in target[node].dependencies), default=0)
        return memo[node]

    return {a: length(a) for a in target}


@SETTINGS
@given(worlds(min_instances=1))
def test_revert_twice_is_the_same_plan(world):
    original, target, restart = world
    p = plan(original, target, restart=restart)
    twice = p.revert("r1", "v1").revert(p.id, p.version)
    assert twice.steps == p.steps


def _has_cycle(target: dict[str, AppDefinition]) -> bool:
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for dep in target[node].dependencies:
            if state.get(dep) == 1 or (dep not in state and visit(dep)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in sorted(target))


@SETTINGS
@given(worlds(acyclic=False))
def test_cycles_are_found_exactly(world):
    _, target, _ = world
    try:
        plan({}, target)
    except DependencyCycle as exc:
        assert _has_cycle(target)
        for cycle in exc.cycles:
            for here, there in zip(cycle, cycle[1:] + cycle[:1]):
                assert there in target[here].dependencies
    else:
        assert not _has_cycle(target)


@SETTINGS
@given(worlds(), st.lists(st.sampled_from(IDS), max_size=4))
def test_the_graph_from_some_roots_orders_them_as_the_whole_graph_does(world, roots):
    # a write plans only from the apps it changes: their levels must not depend on that cut
    _, target, _ = world
    whole, _ = dependency_graph(target)
    part, _ = dependency_graph(target, roots=roots)
    assert set(part) >= {r for r in roots if r in target}
    assert all(part[a] == whole[a] and part[a] <= set(part) for a in part)   # closed under dependencies
    whole_levels, part_levels = dependency_levels(whole), dependency_levels(part)
    assert all(part_levels[a] == whole_levels[a] for a in part)
