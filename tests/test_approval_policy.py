"""Approval gates in the auth file (`[[approval]]`, the `approver` role) and their route
table entries: pure tests of `scheduler.auth.policy` and `scheduler.auth.routes`."""

from __future__ import annotations

import pytest

from scheduler.auth.gates import reaches_beneath, unheld_gated_write
from scheduler.auth.passwords import hash_token
from scheduler.auth.policy import (
    DEFAULT_APPROVAL_EXPIRY,
    AuthFileError,
    Grant,
    User,
    approval_need,
    authorize,
    may,
    parse_auth_file,
)
from scheduler.auth.routes import Lookups, requirement

TOKEN = hash_token("t")


def _file(approval: str, *users: tuple[str, str]) -> str:
    tables = "".join(f'[users.{name}]\ntokens = ["{hash_token(name)}"]\nroles = [{roles}]\n\n' for name, roles in users)
    return tables + approval


def test_approval_tables_parse_with_a_default_expiry():
    config = parse_auth_file(_file('[[approval]]\npaths = ["/prod/**"]\n\n[[approval]]\npaths = ["/pay/*"]\n'
                                   'expiry = "30m"\n', ("a", '"admin on /**"')))
    assert [r.paths for r in config.approvals] == [("/prod/**",), ("/pay/*",)]
    assert [r.expiry_seconds for r in config.approvals] == [DEFAULT_APPROVAL_EXPIRY, 1800.0]


@pytest.mark.parametrize("table, words", [
    ('paths = []', "approval[0].paths must be a non-empty list"),
    ('paths = ["prod/**"]', "approval[0].paths[0]: 'prod/**' must start with '/'"),
    ('paths = ["/prod/**"]\nexpiry = "tomorrow"', "approval[0].expiry must be a positive duration"),
    ('paths = ["/prod/**"]\nexpiry = "0h"', "approval[0].expiry must be a positive duration"),
    ('paths = ["/prod/**"]\nwho = "carol"', "approval[0].who: unknown key"),
])
def test_bad_approval_tables_name_the_field(table: str, words: str):
    with pytest.raises(AuthFileError) as exc:
        parse_auth_file(_file(f"[[approval]]\n{table}\n", ("a", '"admin on /**"')))
    assert words in str(exc.value)


def test_approver_nests_under_admin_and_beside_deployer():
    approver = User("c", token_hashes=(TOKEN,), grants=(Grant("approver", "/prod/**"),))
    deployer = User("d", token_hashes=(TOKEN,), grants=(Grant("deployer", "/prod/**"),))
    admin = User("r", token_hashes=(TOKEN,), grants=(Grant("admin", "/**"),))
    assert may(approver, "approver", "/prod/web") and may(approver, "viewer", "/prod/web")
    assert not may(approver, "deployer", "/prod/web") and not may(approver, "approver", "/dev/web")
    assert not may(deployer, "approver", "/prod/web") and may(deployer, "viewer", "/prod/web")
    assert may(admin, "approver", "/prod/web") and may(admin, "deployer", "/prod/web")


def test_approval_need_names_the_rules_the_shortest_expiry_and_the_approvers_but_the_author():
    config = parse_auth_file(_file('[[approval]]\npaths = ["/prod/**"]\n\n[[approval]]\npaths = ["/prod/pay"]\n'
                                   'expiry = "2h"\n',
                                   ("alice", '"deployer on /prod/**", "approver on /prod/**"'),
                                   ("carol", '"approver on /prod/**"'), ("dave", '"approver on /prod/web"'),
                                   ("root", '"admin on /**"')))
    assert approval_need(config, ["/dev/web"], "alice") is None
    assert approval_need(config, ["/prod/web"], "alice") == (("/prod/**",), DEFAULT_APPROVAL_EXPIRY,
                                                             ("carol", "dave", "root"))
    assert approval_need(config, ["/prod/pay", "/prod/web"], "root") == (("/prod/**", "/prod/pay"), 7200.0,
                                                                        ("alice", "carol"))


def test_approving_needs_the_approver_role_on_every_app_of_the_deployment():
    lookups = Lookups(deployment_apps=lambda d: ("/prod/web", "/prod/pay") if d == "d1" else None)
    needed = requirement("POST", "/v2/deployments/d1/approve", lookups=lookups)
    assert needed.role == "approver" and needed.paths == ("/prod/web", "/prod/pay")
    web_only = User("dave", token_hashes=(TOKEN,), grants=(Grant("approver", "/prod/web"),))
    decision = authorize(web_only, needed)
    # dave may not view /prod/pay: the refusal does not name it
    assert decision.status == 403 and decision.missing == "approver on an app of it you may not view (to approve a " \
                                                          "deployment)"
    seeing = User("erin", grants=(Grant("approver", "/prod/web"), Grant("viewer", "/prod/**")))
    assert authorize(seeing, needed).missing == "approver on /prod/pay (to approve a deployment)"
    assert requirement("POST", "/v2/deployments/d1/reject", lookups=lookups).role == "approver"
    moving = requirement("PUT", "/v2/deployments/d1", lookups=lookups)
    assert moving.role == "deployer" and moving.paths == ("/prod/web", "/prod/pay")
    assert requirement("POST", "/v2/deployments/unknown/approve", lookups=lookups).kind == "authenticated"


def test_writes_that_cannot_be_held_are_refused_on_gated_paths_only():
    config = parse_auth_file(_file('[[approval]]\npaths = ["/prod/**"]\n', ("a", '"admin on /**"')))
    lookups = Lookups(known_apps={"/prod/web", "/dev/web"})

    def refusal(method: str, path: str, scale: bool = False) -> str | None:
        return unheld_gated_write(config, method, path, requirement(method, path, lookups=lookups), scale=scale)

    assert "deleting an app on /prod/web" in (refusal("DELETE", "/v2/apps/prod/web") or "")
    assert "a restart on /prod/web" in (refusal("POST", "/v2/apps/prod/web/restart") or "")
    assert "a group write on /" in (refusal("PUT", "/v2/groups") or "")
    assert "a group write on /prod" in (refusal("DELETE", "/v2/groups/prod") or "")
    assert refusal("DELETE", "/v2/apps/prod/web/tasks", scale=True) is not None
    assert refusal("DELETE", "/v2/apps/prod/web/tasks") is None          # a kill, not a deployment
    assert refusal("DELETE", "/v2/apps/dev/web") is None
    assert refusal("PUT", "/v2/groups/dev") is None
    assert refusal("DELETE", "/v2/deployments/x") is None
    assert reaches_beneath("/prod/**", "/") and reaches_beneath("/prod/web", "/prod")
    assert not reaches_beneath("/prod", "/prod/sub") and not reaches_beneath("/prod/**", "/dev")
