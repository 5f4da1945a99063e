"""Every shape of app definition Marathon's own documentation shows, accepted or refused as Marathon does.

The definitions are written here, not copied: each one has the fields, networking mode and
container type of an example in Marathon's docs (``docs/docs/*.md`` and the REST API examples),
with values of its own. Marathon accepts most of them; where it refuses one, Pacer answers with
Marathon's path and message. The few places where Pacer deliberately answers differently are
asserted as such, each with its reason, at the end.
"""

from __future__ import annotations

from typing import Any

import pytest

from .support import http

IMAGE = "registry.example/team/service:2"

# -- shapes Marathon accepts ----------------------------------------------------------------------

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    # application-basics.md
    ("inline shell script", {"cmd": "while true; do echo tick; sleep 7; done", "cpus": 0.2, "mem": 12.0,
                             "instances": 1}),
    ("fetch an executable", {"cmd": "./start.sh", "cpus": 0.2, "mem": 12,
                             "fetch": [{"uri": "https://artifacts.example/start.sh", "executable": True}]}),
    ("fetch and extract", {"cmd": "bundle/run.sh", "fetch": [{"uri": "https://artifacts.example/bundle.zip"}]}),
    ("fetch with the cache", {"cmd": "bundle/run.sh",
                              "fetch": [{"uri": "https://artifacts.example/bundle.tgz", "cache": True}]}),
    ("fetch to a destination", {"cmd": "./run.sh", "fetch": [{"uri": "https://artifacts.example/x.sh",
                                                             "destPath": "run.sh"}]}),
    ("fetch many", {"cmd": "x", "fetch": [{"uri": "https://a.example/app.zip"},
                                          {"uri": "https://a.example/docs.zip", "extract": False},
                                          {"uri": "https://cdn.example/logo.png", "cache": False},
                                          {"uri": "https://cdn.example/site.css", "cache": True}]}),
    ("docker on a bridge", {"cmd": "serve --port 9090", "cpus": 0.4, "mem": 48.0,
                            "networks": [{"mode": "container/bridge"}],
                            "container": {"type": "DOCKER", "docker": {"image": IMAGE},
                                          "portMappings": [{"containerPort": 9090, "hostPort": 0}]}}),
    # external-volumes.md
    ("mesos container with an external volume", {
        "instances": 1, "cpus": 0.1, "mem": 24, "cmd": "date >> vol/log; cat vol/log",
        "container": {"type": "MESOS", "volumes": [{"containerPath": "vol", "mode": "RW", "external": {
            "size": 50, "name": "ledger", "provider": "dvdi", "options": {"dvdi/driver": "rexray"}}}]},
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
    ("docker with an external and a sandbox volume", {
        "instances": 1, "cpus": 0.1, "mem": 24, "cmd": "date >> /data/vol/log",
        "container": {"type": "DOCKER", "docker": {"image": IMAGE, "network": "HOST", "forcePullImage": True},
                      "volumes": [{"containerPath": "/data/vol", "mode": "RW", "external": {
                          "name": "ledger-2", "provider": "dvdi", "options": {"dvdi/driver": "rexray"}}},
                                  {"hostPath": "logs", "containerPath": "/var/log/svc", "mode": "RW"}]},
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
    # health-checks.md
    ("labels and a kill grace period", {"instances": 2, "cmd": "sleep 900", "cpus": 0.1, "disk": 0, "mem": 12,
                                        "labels": {"owner": "ops", "note": "kept"},
                                        "taskKillGracePeriodSeconds": 20}),
    ("every health check protocol", {
        "cmd": "serve", "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
        "healthChecks": [{"path": "/status", "portIndex": 0, "protocol": "HTTP", "gracePeriodSeconds": 200,
                          "intervalSeconds": 30, "timeoutSeconds": 10, "maxConsecutiveFailures": 2,
                          "ignoreHttp1xx": True},
                         {"path": "/status", "portIndex": 1, "protocol": "HTTPS", "ignoreHttp1xx": False},
                         {"portIndex": 0, "protocol": "TCP", "maxConsecutiveFailures": 0}]}),
    ("a mesos http check", {"cmd": "serve", "healthChecks": [{"path": "/status", "portIndex": 0,
                                                               "protocol": "MESOS_HTTP", "gracePeriodSeconds": 200,
                                                               "intervalSeconds": 30, "timeoutSeconds": 10,
                                                               "maxConsecutiveFailures": 2}]}),
    ("a command check", {"cmd": "serve", "healthChecks": [{"protocol": "COMMAND",
                                                            "command": {"value": "wget -q http://$HOST:$PORT0/"},
                                                            "maxConsecutiveFailures": 3}]}),
    # multirole.md
    ("a role", {"cmd": "env; sleep 900", "instances": 3, "cpus": 0.05, "mem": 64, "role": "public"}),
    # native-docker-private-registry.md (Docker containerizer: credentials fetched into the sandbox)
    ("docker with fetched registry credentials", {
        "cpus": 0.5, "mem": 256, "instances": 1,
        "container": {"type": "DOCKER", "docker": {"image": "private.example/ns/repo", "network": "HOST"}},
        "fetch": [{"uri": "file:///etc/registry-auth.tar.gz"}]}),
    # native-docker.md
    ("docker host network with host volumes", {
        "cmd": "x", "container": {"type": "DOCKER", "docker": {"network": "HOST", "image": IMAGE},
                                  "volumes": [{"containerPath": "/etc/x", "hostPath": "/srv/x", "mode": "RO"},
                                              {"containerPath": "/etc/y", "hostPath": "/srv/y", "mode": "RW"}]}}),
    ("bridged web app", {
        "cmd": "serve 8000", "cpus": 0.3, "mem": 48.0, "instances": 2, "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "docker": {"image": IMAGE},
                      "portMappings": [{"containerPort": 8000, "hostPort": 0, "servicePort": 19100,
                                        "protocol": "tcp"},
                                       {"containerPort": 162, "hostPort": 0, "protocol": "udp"}]},
        "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "path": "/", "gracePeriodSeconds": 3,
                          "intervalSeconds": 15, "maxConsecutiveFailures": 2}]}),
    ("docker force pull", {"cmd": "x", "container": {"type": "DOCKER",
                                                     "docker": {"image": IMAGE, "forcePullImage": True}}}),
    ("docker args for the entrypoint", {"container": {"docker": {"image": IMAGE}, "type": "DOCKER", "volumes": []},
                                        "args": ["--name", "node0", "--state", "new"], "cpus": 0.1, "mem": 16.0}),
    ("privileged with docker options", {
        "container": {"docker": {"image": IMAGE, "privileged": True,
                                 "parameters": [{"key": "hostname", "value": "b.corp.example"},
                                                {"key": "volumes-from", "value": "data-container"}]},
                      "type": "DOCKER", "volumes": []},
        "args": ["greet"], "cpus": 0.1, "mem": 16.0, "instances": 1}),
    # persistent-volumes.md
    ("docker with a persistent mount volume", {
        "cpus": 0.5, "instances": 1, "mem": 256, "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "volumes": [{"containerPath": "pgdata", "mode": "RW", "persistent": {
            "type": "mount", "size": 1024, "maxSize": 4096, "constraints": [["path", "LIKE", "/mnt/fast-.+"]]}}],
                      "docker": {"image": IMAGE},
                      "portMappings": [{"containerPort": 5432, "hostPort": 0, "protocol": "tcp", "name": "pg"}]},
        "env": {"PGDATA": "pgdata"}, "upgradeStrategy": {"maximumOverCapacity": 0, "minimumHealthCapacity": 0}}),
    ("docker with a persistent root volume behind a host path", {
        "cpus": 0.5, "mem": 256, "disk": 0, "instances": 1, "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "volumes": [
            {"containerPath": "dbdata", "mode": "RW", "persistent": {"type": "root", "size": 500}},
            {"containerPath": "/var/lib/db", "hostPath": "dbdata", "mode": "RW"}],
                      "docker": {"image": IMAGE, "forcePullImage": False},
                      "portMappings": [{"containerPort": 3306, "hostPort": 0, "servicePort": 19200,
                                        "protocol": "tcp"}]},
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
    # recipes.md
    ("docker cmd", {"container": {"type": "DOCKER", "docker": {"image": IMAGE}}, "cmd": "echo hi", "cpus": 0.1,
                    "mem": 16.0, "instances": 2}),
    ("docker args", {"container": {"type": "DOCKER", "docker": {"image": IMAGE}}, "args": ["hi", "there"]}),
    ("docker registry with the deprecated ports", {
        "instances": 1, "cpus": 0.2, "mem": 512.0, "disk": 64, "networks": [{"mode": "container/bridge"}],
        "container": {"docker": {"type": "DOCKER", "image": IMAGE, "parameters": []},
                      "portMappings": [{"containerPort": 5000, "hostPort": 0, "protocol": "tcp",
                                        "servicePort": 19300}],
                      "volumes": [{"hostPath": "/srv/registry", "containerPath": "/storage", "mode": "RW"}]},
        "env": {"STORAGE_PATH": "/storage"}, "ports": [0]}),
    ("http, tcp and command checks on deprecated ports", {
        "cmd": "python3 app.py $PORT0", "cpus": 0.1, "disk": 0.0, "instances": 2, "mem": 16.0, "ports": [0],
        "fetch": [{"uri": "https://artifacts.example/app.tgz"}],
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 3,
                          "intervalSeconds": 5, "timeoutSeconds": 5, "maxConsecutiveFailures": 2},
                         {"protocol": "TCP", "portIndex": 0}]}),
    ("a command check on deprecated ports", {
        "cmd": "python3 app.py $PORT0", "ports": [0],
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "wget -q http://$HOST:$PORT0/"},
                          "gracePeriodSeconds": 3, "intervalSeconds": 5, "timeoutSeconds": 5}]}),
    ("accepted resource roles", {"cmd": "x", "acceptedResourceRoles": ["edge"]}),
    ("a single instance app", {"cmd": "x", "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"},
                               "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
    # seccomp.md (a Mesos container without an image: a process)
    ("seccomp unconfined", {"cmd": "sleep 900", "cpus": 0.2, "mem": 24,
                            "container": {"type": "MESOS", "linuxInfo": {"seccomp": {"unconfined": True}}}}),
    ("a seccomp profile", {"cmd": "sleep 900", "cpus": 0.2, "mem": 24,
                           "container": {"type": "MESOS", "linuxInfo": {"seccomp": {"profileName": "strict.json"}}}}),
    # secrets.md
    ("an env secret", {"cmd": "sleep 60", "env": {"DB_PASSWORD": {"secret": "dbpw"}},
                       "secrets": {"dbpw": {"source": "db/password"}}}),
    ("a file secret", {"cmd": "sleep 60", "container": {"type": "MESOS", "volumes": [
        {"containerPath": "conf/db/password", "secret": "dbpw"}]}, "secrets": {"dbpw": {"source": "db/password"}}}),
    # checks.md and the REST API examples
    ("an http check", {"cmd": "python3 -m http.server $PORT0", "cpus": 0.5, "mem": 64, "disk": 0, "instances": 1,
                       "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http"}], "requirePorts": False,
                       "env": {}, "labels": {},
                       "check": {"http": {"portIndex": 0, "path": "/"}, "intervalSeconds": 30,
                                 "timeoutSeconds": 10}}),
    ("an exec check", {"cmd": "sleep 900", "check": {"exec": {"command": {"shell": "true"}}, "intervalSeconds": 30,
                                                     "timeoutSeconds": 10}}),
    # constraints.md and fault-domain-awareness.md
    ("cluster on a value", {"cmd": "sleep 60", "instances": 3, "constraints": [["rack_id", "CLUSTER", "r1"]]}),
    ("cluster on any value", {"cmd": "sleep 60", "constraints": [["rack_id", "CLUSTER"]]}),
    ("cluster on a host", {"cmd": "sleep 60", "constraints": [["hostname", "CLUSTER", "node-1.example"]]}),
    ("cluster on any host", {"cmd": "sleep 60", "constraints": [["hostname", "CLUSTER"]]}),
    ("like", {"cmd": "sleep 60", "constraints": [["rack_id", "LIKE", "r[1-3]"]]}),
    ("unlike", {"cmd": "sleep 60", "constraints": [["rack_id", "UNLIKE", "r[7-9]"]]}),
    ("max per", {"cmd": "sleep 60", "constraints": [["rack_id", "MAX_PER", "2"]]}),
    ("unique", {"cmd": "sleep 60", "constraints": [["hostname", "UNIQUE"]]}),
    ("group by", {"cmd": "sleep 60", "constraints": [["rack_id", "GROUP_BY", "3"]]}),
    ("is", {"cmd": "sleep 60", "constraints": [["rack_id", "IS", "r1"], ["level", "IS", "0.80"]]}),
    ("fault domains", {"cmd": "sleep 60", "instances": 6,
                       "constraints": [["@region", "IS", "eu-west"], ["@zone", "GROUP_BY", "4"]]}),
    # readiness-checks.md
    ("a readiness check", {"cmd": "serve", "portDefinitions": [{"port": 0, "name": "http-api"}],
                           "readinessChecks": [{"name": "readinessCheck", "protocol": "HTTP", "path": "/",
                                                "portName": "http-api", "intervalSeconds": 30,
                                                "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
                                                "preserveLastResponse": False}]}),
    # unreachable.md, configure-task-handling.md, resource-limits.md
    ("an unreachable strategy", {"cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 0,
                                                                     "expungeAfterSeconds": 0}}),
    ("no unreachable strategy", {"cmd": "x", "unreachableStrategy": "disabled"}),
    ("kill selection", {"cmd": "x", "killSelection": "OLDEST_FIRST"}),
    ("resource limits", {"cmd": "x", "cpus": 1, "mem": 512, "resourceLimits": {"cpus": "unlimited", "mem": 1024}}),
    # networking.md: Marathon's Universal Container Runtime (MESOS with a Docker image)
    ("ucr on the host network", {"cmd": "x", "networks": [{"mode": "host"}],
                                 "container": {"type": "MESOS", "docker": {"image": IMAGE}}}),
    ("ucr on a bridge", {"cmd": "x", "networks": [{"mode": "container/bridge"}],
                         "container": {"type": "MESOS", "docker": {"image": IMAGE}}}),
    ("ucr on a named network", {"cmd": "x", "networks": [{"mode": "container", "name": "tenant-net"}],
                                "container": {"type": "MESOS", "docker": {"image": IMAGE}}}),
    ("ucr bridge mappings with dynamic ports", {
        "cmd": "x", "networks": [{"mode": "container/bridge"}],
        "container": {"type": "MESOS", "docker": {"image": IMAGE},
                      "portMappings": [{"containerPort": 0, "hostPort": 0, "name": "web"},
                                       {"containerPort": 0, "hostPort": 0, "name": "tls"},
                                       {"containerPort": 0, "hostPort": 0, "name": "stats"}]}}),
    ("ucr bridge mappings with protocols and service ports", {
        "cmd": "x", "networks": [{"mode": "container/bridge"}],
        "container": {"type": "MESOS", "docker": {"image": IMAGE},
                      "portMappings": [{"containerPort": 81, "hostPort": 0, "name": "web", "protocol": "tcp",
                                        "servicePort": 19400},
                                       {"containerPort": 444, "hostPort": 0, "name": "tls", "protocol": "tcp",
                                        "servicePort": 19401},
                                       {"containerPort": 4001, "hostPort": 0, "name": "stats", "protocol": "udp",
                                        "servicePort": 19402},
                                       {"containerPort": 53, "hostPort": 0, "name": "dns",
                                        "protocol": "udp,tcp"}]}}),
    ("named port definitions", {"cmd": "x", "portDefinitions": [{"port": 0, "name": "web"},
                                                                {"port": 0, "name": "tls"},
                                                                {"port": 0, "name": "stats"}]}),
    ("fixed service ports", {"cmd": "x", "portDefinitions": [{"port": 19501, "name": "web"},
                                                             {"port": 19502, "name": "tls"}]}),
    ("required host ports", {"cmd": "x", "requirePorts": True,
                             "portDefinitions": [{"port": 19511, "name": "web"}, {"port": 19512, "name": "tls"}]}),
    ("a port definition with labels", {"cmd": "x", "portDefinitions": [
        {"port": 0, "protocol": "tcp", "name": "web", "labels": {"VIP_0": "10.1.0.1:80"}}]}),
    # ports.md and the 1.5 network API migration (the deprecated spellings)
    ("deprecated host network", {"cmd": "x", "container": {"type": "DOCKER",
                                                           "docker": {"image": IMAGE, "network": "HOST"}}}),
    ("deprecated dynamic ports", {"cmd": "x", "ports": [0, 0, 0]}),
    ("port definitions without names", {"cmd": "x", "portDefinitions": [{"port": 0}, {"port": 0}]}),
    ("deprecated fixed ports", {"cmd": "x", "ports": [19521, 19522, 19523], "requirePorts": True}),
    ("deprecated bridge with docker port mappings", {
        "cmd": "x", "container": {"type": "DOCKER", "docker": {
            "image": IMAGE, "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp", "servicePort": 19531},
                             {"containerPort": 0, "hostPort": 0},
                             {"containerPort": 4000, "hostPort": 0, "protocol": "udp"}]}}}),
    ("deprecated user network", {"cmd": "x", "ipAddress": {"networkName": "tenant-net"},
                                 "container": {"type": "DOCKER", "docker": {
                                     "image": IMAGE, "network": "USER",
                                     "portMappings": [{"containerPort": 80, "protocol": "tcp", "name": "web"}]}}}),
    ("docker on a named network", {"cpus": 1, "mem": 128, "instances": 1, "networks": [
        {"mode": "container", "name": "tenant-net"}], "container": {
        "type": "DOCKER", "docker": {"image": IMAGE},
        "portMappings": [{"containerPort": 80, "protocol": "tcp", "name": "web"}]}}),
    ("docker bridge with a named mapping", {"networks": [{"mode": "container/bridge"}], "container": {
        "type": "DOCKER", "docker": {"image": IMAGE},
        "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp", "name": "web"}]}}),
    ("docker host network with a port definition", {
        "networks": [{"mode": "host"}], "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "web"}]}),
    ("an unnamed container network (default network name)", {
        "cmd": "x", "networks": [{"mode": "container"}], "container": {"type": "DOCKER", "docker": {"image": IMAGE}}}),
    # ip-per-task.md (the deprecated ipAddress: a Mesos container on a container network)
    ("ip per task", {"cmd": "x", "ipAddress": {}}),
    ("ip per task with groups and labels", {"cmd": "x", "ipAddress": {"groups": ["prod"],
                                                                      "labels": {"ipam": "hint"}}}),
    ("ip per task on a named network", {"cmd": "x", "ipAddress": {"networkName": "tenant-net"}}),
    ("ip per task with discovery", {"cmd": "x", "ipAddress": {"discovery": {"ports": [
        {"number": 80, "name": "web", "protocol": "tcp"}]}}}),
    # the REST API's group example, one app at a time
    ("docker host with a deprecated port and uris", {
        "instances": 2, "cpus": 1, "mem": 512, "disk": 0, "constraints": [["hostname", "UNIQUE"]], "uris": [],
        "ports": [19541], "requirePorts": False, "backoffSeconds": 1, "backoffFactor": 1.15,
        "maxLaunchDelaySeconds": 3600, "container": {"type": "DOCKER", "volumes": [], "docker": {
            "image": IMAGE, "network": "HOST", "privileged": False, "parameters": [], "forcePullImage": False}},
        "healthChecks": [{"path": "/", "protocol": "HTTP", "portIndex": 0, "gracePeriodSeconds": 300,
                          "intervalSeconds": 20, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
                          "ignoreHttp1xx": False}],
        "dependencies": [], "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}),
    ("privileged docker with host volumes", {
        "instances": 5, "cpus": 1, "mem": 256, "executor": "", "ports": [19551], "container": {
            "type": "DOCKER", "volumes": [
                {"containerPath": "/var/run/docker.sock", "hostPath": "/var/run/docker.sock", "mode": "RW"},
                {"containerPath": "/host/proc/mounts", "hostPath": "/proc/mounts", "mode": "RO"}],
            "docker": {"image": IMAGE, "network": "HOST", "privileged": True, "parameters": [],
                       "forcePullImage": False}}, "healthChecks": []}),
]


@pytest.mark.parametrize("body", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_shapes_marathon_accepts_are_accepted(api, body: dict[str, Any], request: pytest.FixtureRequest) -> None:
    app_id = "/docs/" + request.node.callspec.id.replace(" ", "-").replace("(", "").replace(")", "").replace(",", "")
    status, created, _ = http("POST", api.url, "/v2/apps", {"id": app_id, **body})
    assert status == 201, created
    assert http("DELETE", api.url, f"/v2/apps{app_id}?force=true")[0] == 200


def test_the_documented_group_with_dependencies_is_accepted(api) -> None:
    group = {"id": "/product", "groups": [
        {"id": "/product/database", "apps": [{"id": "/product/database/kv", "cmd": "sleep 60", "instances": 0},
                                             {"id": "/product/database/sql", "cmd": "sleep 60", "instances": 0}]},
        {"id": "/product/service", "dependencies": ["/product/database"],
         "apps": [{"id": "/product/service/web", "cmd": "sleep 60", "instances": 0,
                   "dependencies": ["../database"]},
                  {"id": "/product/service/api", "cmd": "sleep 60", "instances": 0,
                   "dependencies": ["api/../../database"]}]}]}
    status, body, _ = http("POST", api.url, "/v2/groups", group)
    assert status == 201, body
    app = http("GET", api.url, "/v2/apps/product/service/web")[1]["app"]
    assert app["dependencies"] == ["/product/database"]
    assert http("DELETE", api.url, "/v2/groups/product?force=true")[0] == 200


def test_the_rest_examples_batch_update_and_patch_shapes_are_accepted(api) -> None:
    batch = [{"id": "/batch/first", "cmd": "sleep 60", "cpus": 0.2, "instances": 0, "mem": 8,
              "dependencies": ["/batch/second", "/elsewhere/not-yet"]},
             {"id": "/batch/second", "cmd": "sleep 120", "cpus": 0.2, "instances": 0, "mem": 8}]
    status, body, _ = http("PUT", api.url, "/v2/apps", batch)
    assert status == 200, body
    status, body, _ = http("PATCH", api.url, "/v2/apps/batch/first?force=true", {"id": "/batch/first", "instances": 0})
    assert status == 200, body
    status, body, _ = http("PATCH", api.url, "/v2/apps?force=true", [{"id": "/batch/first", "cpus": 0.3},
                                                         {"id": "/batch/second", "instances": 0}])
    assert status == 200, body
    assert http("GET", api.url, "/v2/apps/batch/first")[1]["app"]["cpus"] == 0.3
    for app_id in ("/batch/first", "/batch/second"):
        assert http("DELETE", api.url, f"/v2/apps{app_id}?force=true")[0] == 200


# -- shapes Marathon refuses, with Marathon's path and message -------------------------------------

MIXED_NETWORKS = "May specify a single host network, single bridge network, or else 1-to-n container networks"
CMD_AND_ARGS = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."

REFUSED: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    # the REST API's App example: ip-per-task discovery on a Docker container, plus port definitions
    ("the api's app example", {
        "cmd": "sleep 100", "args": ["sleep", "100"], "cpus": 0.1, "mem": 16,
        "container": {"type": "DOCKER", "docker": {
            "image": IMAGE, "network": "BRIDGE", "parameters": [{"key": "name", "value": "kdc"}],
            "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp", "servicePort": 19601,
                              "name": "http", "labels": {"vip": "10.2.0.1:80"}}]},
            "volumes": [{"containerPath": "/store", "hostPath": "/srv/store", "mode": "RW"}]},
        "ipAddress": {"discovery": {"ports": [{"number": 8080, "name": "rest", "protocol": "tcp"}]},
                      "groups": ["dev"], "labels": {"environment": "dev"}},
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http"}]},
     {"/ipAddress": "ipAddress/discovery is not allowed for Docker containers",
      "/": "cannot specify both an IP address and port"}),
    # secrets.md's file secret without a container type: a DOCKER container with no docker block
    ("a file secret in a container of no type", {
        "cmd": "sleep 60", "container": {"volumes": [{"containerPath": "conf/pw", "secret": "pw"}]},
        "secrets": {"pw": {"source": "db/password"}}},
     {"/container/docker": "not defined"}),
    # the 1.5 network API migration's invalid example
    ("mixed network modes", {
        "cpus": 1, "mem": 128, "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "web"}],
        "networks": [{"mode": "host"}, {"mode": "container/bridge"}]},
     {"/networks": MIXED_NETWORKS}),
    # native-docker.md: "It is invalid to supply both cmd and args"
    ("cmd and args", {"cmd": "echo a", "args": ["echo", "b"], "container": {"type": "DOCKER",
                                                                          "docker": {"image": IMAGE}}},
     {"/": CMD_AND_ARGS}),
    # persistent-volumes.md: "it cannot contain a forward slash"
    ("a nested persistent volume path", {
        "cmd": "x", "container": {"type": "MESOS", "volumes": [
            {"containerPath": "/var/data", "mode": "RW", "persistent": {"size": 10}}]},
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}},
     {"/container/volumes(0)/containerPath": 'value must not contain "/"'}),
    # a UCR container takes no Docker-containerizer options
    ("ucr with docker options", {"cmd": "x", "container": {"type": "MESOS", "docker": {
        "image": IMAGE, "network": "HOST", "parameters": [{"key": "hostname", "value": "h"}]}}},
     {"/container/docker/network": "must be empty", "/container/docker/parameters": "must be empty"}),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_shapes_marathon_refuses_are_refused_with_marathons_message(api, body: dict[str, Any],
                                                                   expected: dict[str, str]) -> None:
    status, answer, _ = http("POST", api.url, "/v2/apps", {"id": "/docs/refused", **body})
    assert status == 422 and answer["message"] == "Object is not valid", answer
    found = {d["path"]: d["errors"] for d in answer["details"]}
    for path, message in expected.items():
        assert message in found.get(path, []), found


def test_an_enum_value_marathon_cannot_read_is_refused_at_its_path(api) -> None:
    """configure-task-handling.md writes ``"killSelection": "YoungestFirst"``, which Marathon's reader
    refuses too (its values are YOUNGEST_FIRST and OLDEST_FIRST); Marathon says
    ``error.unknown.enum.literal`` under "Invalid JSON", Pacer names the values it expects."""
    status, answer, _ = http("POST", api.url, "/v2/apps", {"id": "/docs/kill", "cmd": "x",
                                                           "killSelection": "YoungestFirst"})
    assert status == 422
    assert [d["path"] for d in answer["details"]] == ["/killSelection"]


# -- where Pacer answers differently from Marathon, on purpose ------------------------------------

def test_lxc_conf_is_refused_because_no_docker_engine_has_it(api) -> None:
    """native-docker.md passes ``lxc-conf``; Marathon hands it to a docker CLI that has not known it
    since Docker 1.10, so the task could never start. Pacer refuses it when the app is submitted."""
    status, answer, _ = http("POST", api.url, "/v2/apps", {
        "id": "/docs/lxc", "args": ["greet"], "container": {"type": "DOCKER", "docker": {
            "image": IMAGE, "privileged": True, "parameters": [
                {"key": "hostname", "value": "b.corp.example"}, {"key": "volumes-from", "value": "data"},
                {"key": "lxc-conf", "value": "lxc.aa_profile=unconfined"}]}}})
    assert status == 422
    assert [d["path"] for d in answer["details"]] == ["/container/docker/parameters(2)/key"]


def test_ucr_registry_credentials_from_a_secret_are_refused_without_a_secret_store(api) -> None:
    """native-docker-private-registry.md pulls a UCR image with ``pullConfig``; Pacer has no secret
    store to read the credentials from, so it refuses rather than pull without them."""
    status, answer, _ = http("POST", api.url, "/v2/apps", {
        "id": "/docs/pull", "args": ["hi"], "cpus": 0.1, "mem": 16.0,
        "container": {"type": "MESOS", "docker": {"image": IMAGE, "pullConfig": {"secret": "pull"}}},
        "secrets": {"pull": {"source": "/docs/pull/config"}}})
    assert status == 422
    assert [d["path"] for d in answer["details"]] == ["/container/docker/pullConfig"]


def test_ucr_on_several_container_networks_is_refused(api) -> None:
    """The 1.5 network API migration joins a UCR container to two networks; the Docker engine joins a
    container to one network at creation, so Pacer refuses the second rather than leave it out."""
    status, answer, _ = http("POST", api.url, "/v2/apps", {
        "id": "/docs/multi", "cpus": 1, "mem": 128, "networks": [{"mode": "container", "name": "first"},
                                                                 {"mode": "container", "name": "second"}],
        "container": {"type": "MESOS", "docker": {"image": IMAGE}, "portMappings": [
            {"containerPort": 80, "protocol": "tcp", "name": "web", "networkNames": ["first"]},
            {"containerPort": 81, "protocol": "tcp", "name": "admin", "networkNames": ["second"]}]}})
    assert status == 422
    assert [d["path"] for d in answer["details"]] == ["/networks"]
