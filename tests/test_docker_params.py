"""Pure parts of the Docker runtime: parameters, container options, exit mapping, stats, app → container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app_definitions import parse_app_definition
from app_definitions.container import (
    DOCKER_PARAMETER_ALIASES,
    REFUSED_DOCKER_PARAMETERS,
    SUPPORTED_DOCKER_PARAMETERS,
)
from executor import InvalidTaskSpec
from executor.docker_params import (
    ParameterOptions,
    map_parameters,
    mapped_parameters,
    parse_bytes,
    parse_duration_ns,
    signal_number,
)
from executor.docker_spec import (
    LABEL_SCOPE,
    LABEL_TASK_ID,
    ContainerLaunch,
    PortBinding,
    VolumeMount,
    container_exit,
    container_info,
    container_options,
    usage_from_stats,
)
from scheduler.backends.local import container_launch, docker_unsupported, is_docker_app
from scheduler.state.model import Instance

MiB = 1024 * 1024

# -- parameters ---------------------------------------------------------------------------------

PARAMETER_CASES: list[tuple[str, str, str, Any]] = [
    # key, value, where the result lands ("env"/"labels"/"binds"/"anonymous"/"create:x"/"host:x"), expected
    ("env", "A=1", "env", {"A": "1"}),
    ("e", "B=x=y", "env", {"B": "x=y"}),
    ("--env", "EMPTY", "env", {"EMPTY": ""}),
    ("label", "tier=web", "labels", {"tier": "web"}),
    ("l", "flag", "labels", {"flag": ""}),
    ("volume", "/srv:/data", "binds", ["/srv:/data"]),
    ("v", "named:/cache:ro", "binds", ["named:/cache:ro"]),
    ("-v", "/scratch", "anonymous", ["/scratch"]),
    ("user", "65534:65534", "create:user", "65534:65534"),
    ("u", "nobody", "create:user", "nobody"),
    ("workdir", "/app", "create:working_dir", "/app"),
    ("w", "/tmp", "create:working_dir", "/tmp"),
    ("hostname", "web-1", "create:hostname", "web-1"),
    ("h", "web-2", "create:hostname", "web-2"),
    ("stop-signal", "SIGQUIT", "create:stop_signal", "SIGQUIT"),
    ("memory-swap", "1g", "host:memswap_limit", 1024**3),
    ("memory-swap", "-1", "host:memswap_limit", -1),
    ("memory-reservation", "64m", "host:mem_reservation", 64 * MiB),
    ("shm-size", "128MB", "host:shm_size", 128 * MiB),
    ("add-host", "db.local:10.0.0.7", "host:extra_hosts", ["db.local:10.0.0.7"]),
    ("cap-add", "NET_ADMIN", "host:cap_add", ["NET_ADMIN"]),
    ("cap-drop", "ALL", "host:cap_drop", ["ALL"]),
    ("dns", "10.0.0.2", "host:dns", ["10.0.0.2"]),
    ("dns-search", "corp.local", "host:dns_search", ["corp.local"]),
    ("security-opt", "no-new-privileges", "host:security_opt", ["no-new-privileges"]),
    ("ulimit", "nofile=1024:2048", "host:ulimits", [{"name": "nofile", "soft": 1024, "hard": 2048}]),
    ("ulimit", "nproc=64", "host:ulimits", [{"name": "nproc", "soft": 64, "hard": 64}]),
    ("sysctl", "net.core.somaxconn=1024", "host:sysctls", {"net.core.somaxconn": "1024"}),
    ("tmpfs", "/run:size=64m", "host:tmpfs", {"/run": "size=64m"}),
    ("log-driver", "json-file", "host:log_config", {"type": "json-file", "config": {}}),
    ("log-opt", "max-size=10m", "host:log_config", {"type": "", "config": {"max-size": "10m"}}),
    ("read-only", "true", "host:read_only", True),
    ("read-only", "false", "host:read_only", False),
    ("init", "true", "host:init", True),
    ("pids-limit", "100", "host:pids_limit", 100),
    # keys added so that every docker run option the engine's API can express is accepted
    ("privileged", "true", "host:privileged", True),
    ("memory", "256m", "host:mem_limit", 256 * MiB),
    ("m", "1g", "host:mem_limit", 1024**3),
    ("kernel-memory", "64m", "host:kernel_memory", 64 * MiB),
    ("memory-swappiness", "10", "host:mem_swappiness", 10),
    ("oom-score-adj", "-500", "host:oom_score_adj", -500),
    ("oom-kill-disable", "true", "host:oom_kill_disable", True),
    ("cpu-shares", "512", "host:cpu_shares", 512),
    ("c", "256", "host:cpu_shares", 256),
    ("cpu-period", "50000", "host:cpu_period", 50_000),
    ("cpu-quota", "25000", "host:cpu_quota", 25_000),
    ("cpu-rt-period", "1000000", "host:cpu_rt_period", 1_000_000),
    ("cpu-rt-runtime", "950000", "host:cpu_rt_runtime", 950_000),
    ("cpus", "1.5", "host:nano_cpus", 1_500_000_000),
    ("cpuset-cpus", "0-1", "host:cpuset_cpus", "0-1"),
    ("cpuset-mems", "0", "host:cpuset_mems", "0"),
    ("blkio-weight", "300", "host:blkio_weight", 300),
    ("blkio-weight-device", "/dev/sda:200", "host:blkio_weight_device", [{"Path": "/dev/sda", "Weight": 200}]),
    ("device-read-bps", "/dev/sda:1mb", "host:device_read_bps", [{"Path": "/dev/sda", "Rate": MiB}]),
    ("device-write-bps", "/dev/sda:512k", "host:device_write_bps", [{"Path": "/dev/sda", "Rate": 512 * 1024}]),
    ("device-read-iops", "/dev/sda:100", "host:device_read_iops", [{"Path": "/dev/sda", "Rate": 100}]),
    ("device-write-iops", "/dev/sda:50", "host:device_write_iops", [{"Path": "/dev/sda", "Rate": 50}]),
    ("device", "/dev/null:/dev/nothing:rw", "host:devices", ["/dev/null:/dev/nothing:rw"]),
    ("device-cgroup-rule", "c 1:3 mr", "host:device_cgroup_rules", ["c 1:3 mr"]),
    ("cgroup-parent", "/pacer", "host:cgroup_parent", "/pacer"),
    ("cgroupns", "private", "host:cgroupns", "private"),
    ("dns-option", "ndots:2", "host:dns_opt", ["ndots:2"]),
    ("dns-opt", "use-vc", "host:dns_opt", ["use-vc"]),
    ("domainname", "corp.local", "create:domainname", "corp.local"),
    ("entrypoint", "/bin/echo", "create:entrypoint", ["/bin/echo"]),
    ("entrypoint", "", "create:entrypoint", [""]),
    ("expose", "8080", "exposed", [(8080, "tcp")]),
    ("expose", "53/udp", "exposed", [(53, "udp")]),
    ("expose", "9000-9002/tcp", "exposed", [(9000, "tcp"), (9001, "tcp"), (9002, "tcp")]),
    ("gpus", "all", "host:device_requests",
     [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
    ("gpus", "2", "host:device_requests",
     [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
    ("gpus", '"device=0,2"', "host:device_requests",
     [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "2"], "Capabilities": [["gpu"]], "Options": {}}]),
    ("group-add", "audio", "host:group_add", ["audio"]),
    ("health-cmd", "wget -q -O- localhost", "health:Test", ["CMD-SHELL", "wget -q -O- localhost"]),
    ("health-interval", "1m30s", "health:Interval", 90 * 10**9),
    ("health-timeout", "250ms", "health:Timeout", 250 * 10**6),
    ("health-start-period", "5s", "health:StartPeriod", 5 * 10**9),
    ("health-retries", "3", "health:Retries", 3),
    ("no-healthcheck", "true", "health:Test", ["NONE"]),
    ("interactive", "true", "create:stdin_open", True),
    ("i", "", "create:stdin_open", True),
    ("tty", "true", "create:tty", True),
    ("t", "false", "create:tty", False),
    ("ip", "10.5.0.9", "endpoint:IPAMConfig", {"IPv4Address": "10.5.0.9"}),
    ("ip6", "fd00::9", "endpoint:IPAMConfig", {"IPv6Address": "fd00::9"}),
    ("link-local-ip", "169.254.1.1", "endpoint:IPAMConfig", {"LinkLocalIPs": ["169.254.1.1"]}),
    ("network-alias", "db", "endpoint:Aliases", ["db"]),
    ("net-alias", "cache", "endpoint:Aliases", ["cache"]),
    ("ipc", "private", "host:ipc_mode", "private"),
    ("pid", "host", "host:pid_mode", "host"),
    ("uts", "host", "host:uts_mode", "host"),
    ("userns", "host", "host:userns_mode", "host"),
    ("isolation", "default", "host:isolation", "default"),
    ("runtime", "runc", "host:runtime", "runc"),
    ("volume-driver", "local", "host:volume_driver", "local"),
    ("link", "db:database", "host:links", {"db": "database"}),
    ("link", "cache", "host:links", {"cache": "cache"}),
    ("mac-address", "02:42:ac:11:00:02", "create:mac_address", "02:42:ac:11:00:02"),
    ("mount", "type=bind,source=/srv,target=/data,readonly", "host:mounts",
     [{"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": True}]),
    ("mount", "type=bind,src=/srv,dst=/data,bind-propagation=rslave", "host:mounts",
     [{"Type": "bind", "Source": "/srv", "Target": "/data", "BindOptions": {"Propagation": "rslave"}}]),
    ("mount", "type=tmpfs,target=/scratch,tmpfs-size=64m,tmpfs-mode=1777", "host:mounts",
     [{"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 64 * MiB, "Mode": 0o1777}}]),
    ("mount", "source=cache,target=/cache,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
     "host:mounts", [{"Type": "volume", "Source": "cache", "Target": "/cache", "VolumeOptions": {
         "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}}}]),
    ("name", "web", "name", "web"),
    ("platform", "linux/amd64", "create:platform", "linux/amd64"),
    ("pull", "always", "force_pull", True),
    ("pull", "missing", "force_pull", False),
    ("rm", "true", "nothing", None),
    ("detach", "true", "nothing", None),
    ("d", "", "nothing", None),
    ("stop-timeout", "30", "create:stop_timeout", 30),
    ("storage-opt", "size=10G", "host:storage_opt", {"size": "10G"}),
    ("volumes-from", "data-1:ro", "host:volumes_from", ["data-1:ro"]),
]


def _landed(key: str, value: str, where: str) -> Any:
    options = map_parameters([(key, value)])
    if where == "anonymous":
        return options.anonymous_volumes
    if where == "nothing":  # accepted, and Pacer already behaves that way
        assert options == ParameterOptions()
        return None
    if where in ("env", "labels", "binds", "exposed", "name", "force_pull"):
        return getattr(options, where)
    section, _, name = where.partition(":")
    sections = {"create": options.create, "host": options.host_config, "endpoint": options.endpoint,
                "health": options.healthcheck}
    return sections[section][name]


@pytest.mark.parametrize(("key", "value", "where", "expected"), PARAMETER_CASES,
                         ids=[f"{k}={v}" for k, v, _, _ in PARAMETER_CASES])
def test_each_parameter_maps_onto_the_engine_api(key: str, value: str, where: str, expected: Any) -> None:
    assert _landed(key, value, where) == expected


def test_every_supported_key_and_alias_has_a_mapping() -> None:
    covered = {k.lstrip("-") for k, _, _, _ in PARAMETER_CASES}
    assert SUPPORTED_DOCKER_PARAMETERS <= {DOCKER_PARAMETER_ALIASES.get(k, k) for k in covered}
    assert {a for a, k in DOCKER_PARAMETER_ALIASES.items() if k in SUPPORTED_DOCKER_PARAMETERS} <= covered
    assert mapped_parameters() == SUPPORTED_DOCKER_PARAMETERS


def test_refused_keys_have_no_mapping_and_a_reason() -> None:
    assert not set(REFUSED_DOCKER_PARAMETERS) & SUPPORTED_DOCKER_PARAMETERS
    assert "lxc-conf" in REFUSED_DOCKER_PARAMETERS and all(REFUSED_DOCKER_PARAMETERS.values())
    for key in REFUSED_DOCKER_PARAMETERS:
        with pytest.raises(InvalidTaskSpec, match=f"'{key}' is not supported"):
            map_parameters([(key, "x")])


@pytest.mark.parametrize(("text", "nanoseconds"), [("0", 0), ("30s", 30 * 10**9), ("1m30s", 90 * 10**9),
                                                   ("1.5h", 5400 * 10**9), ("250ms", 250 * 10**6),
                                                   ("10us", 10_000), ("7ns", 7)])
def test_durations_read_like_the_docker_cli(text: str, nanoseconds: int) -> None:
    assert parse_duration_ns("health-interval", text) == nanoseconds


def test_repeated_parameters_accumulate_and_single_ones_take_the_last_value() -> None:
    options = map_parameters([("cap-add", "A"), ("cap-add", "B"), ("user", "1"), ("user", "2"),
                              ("env", "X=1"), ("env", "X=2"), ("log-opt", "a=1"), ("log-driver", "local")])
    assert options.host_config["cap_add"] == ["A", "B"]
    assert options.create["user"] == "2" and options.env == {"X": "2"}
    assert options.host_config["log_config"] == {"type": "local", "config": {"a": "1"}}


BAD_VALUES = [
    ("memory-swap", "lots", "memory-swap': 'lots' is not a size"),
    ("ulimit", "nofile", "expected NAME=VALUE"),
    ("ulimit", "nofile=a:b", "SOFT[:HARD] with integers"),
    ("add-host", "nohost", "expected HOST:IP"),
    ("volume", "relative:path", "SOURCE:/container/path"),
    ("volume", "a:b:c:d", "SOURCE:/container/path"),
    ("read-only", "maybe", "expected true or false"),
    ("pids-limit", "many", "expected an integer"),
    ("tmpfs", "run", "/path[:options]"),
    ("user", "", "must not be empty"),
    ("stop-signal", "SIGNOPE", "'SIGNOPE' is not a signal"),
    ("publish", "80:80", "'publish' is not supported"),
    ("rm", "false", "'false' cannot be honoured: Pacer removes every container"),
    ("detach", "no", "'no' cannot be honoured: Pacer runs every container detached"),
    ("pull", "never", "'never' cannot be honoured"),
    ("name", "-web", "'-web' is not a container name"),
    ("name", "web/1", "'web/1' is not a container name"),
    ("health-interval", "10", "'10' is not a duration"),
    ("health-timeout", "5 s", "'5 s' is not a duration"),
    ("cpus", "lots", "expected a number of CPUs"),
    ("mount", "type=nfs,target=/x", "cannot read mount"),
    ("mount", "type=bind,target=/x,colour=blue", "cannot read mount"),
    ("mount", "source=/a", "a mount needs a target"),
    ("gpus", "many", "cannot read 'many'"),
    ("expose", "http", "expected PORT"),
    ("expose", "70000", "between 1 and 65535"),
    ("device-read-bps", "sda:1mb", "/dev/DEVICE:AMOUNT"),
    ("device-read-iops", "/dev/sda:fast", "expected an integer"),
    ("storage-opt", "size", "expected NAME=VALUE"),
    ("link", ":alias", "must not be empty"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_bad_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(InvalidTaskSpec, match=message.replace("[", r"\[").replace("]", r"\]")):
        map_parameters([(key, value)])


@pytest.mark.parametrize(("text", "size"), [("512", 512), ("64k", 65536), ("1.5g", int(1.5 * 1024**3)),
                                            ("2M", 2 * MiB), ("10mb", 10 * MiB), ("-1", -1)])
def test_sizes_use_powers_of_1024(text: str, size: int) -> None:
    assert parse_bytes("k", text) == size


# -- container options --------------------------------------------------------------------------

def test_container_options_for_a_shell_command_on_host_networking() -> None:
    spec = ContainerLaunch(task_id="t1", image="img:1", env={"PORT0": "31000", "A": "app"},
                           labels={"team": "x", LABEL_TASK_ID: "forged"}, shell_command="echo $PORT0",
                           cpus=0.25, mem_mb=64, kill_grace_seconds=7, sandbox=Path("/sb/t1"),
                           parameters=(("env", "A=param"), ("env", "B=param"), ("label", "team=param")))
    options = container_options(spec, {LABEL_SCOPE: "/home"})
    assert options.create == {
        "image": "img:1", "name": "pacer-t1", "detach": True, "stop_timeout": 7,
        "environment": {"A": "app", "B": "param", "PORT0": "31000", "MESOS_SANDBOX": "/mnt/mesos/sandbox"},
        "labels": {"team": "x", LABEL_TASK_ID: "t1", LABEL_SCOPE: "/home"},
        "entrypoint": ["/bin/sh", "-c"], "command": ["echo $PORT0"],
    }
    assert options.host_config == {
        "network_mode": "host", "binds": ["/sb/t1:/mnt/mesos/sandbox:rw"], "privileged": False,
        "cpu_shares": 256, "cpu_period": 100_000, "cpu_quota": 25_000, "mem_limit": 64 * MiB,
    }
    assert options.stop_signal == "SIGTERM"


def test_container_options_for_args_on_bridge_networking() -> None:
    spec = ContainerLaunch(task_id="t2", image="img", env={}, labels={}, args=("serve", "--port", "80"),
                           network="bridge", cpus=0.001, privileged=True,
                           port_bindings=(PortBinding(80, 31001), PortBinding(53, 31002, "udp,tcp")),
                           volumes=(VolumeMount("/srv", "/data", read_only=True), VolumeMount("cache", "/cache")),
                           sandbox=Path("/sb/t2"), parameters=(("stop-signal", "SIGINT"), ("v", "/anon")))
    options = container_options(spec)
    assert "entrypoint" not in options.create and options.create["command"] == ["serve", "--port", "80"]
    assert options.create["ports"] == [("80", "tcp"), ("53", "udp"), ("53", "tcp")]
    assert options.create["volumes"] == ["/anon"]
    assert options.host_config["port_bindings"] == {"80/tcp": [31001], "53/udp": [31002], "53/tcp": [31002]}
    assert options.host_config["binds"] == ["/sb/t2:/mnt/mesos/sandbox:rw", "/srv:/data:ro",
                                            "/sb/t2/cache:/cache:rw"]   # relative host paths live in the sandbox
    assert options.host_config["cpu_quota"] == 1_000 and options.host_config["cpu_shares"] == 2   # floors
    assert options.host_config["privileged"] is True and "mem_limit" not in options.host_config
    assert options.stop_signal == "SIGINT" and options.create["stop_timeout"] == 3


def test_no_command_runs_the_images_default_and_no_sandbox_means_no_mount() -> None:
    options = container_options(ContainerLaunch(task_id="t3", image="img", env={}, labels={}))
    assert "command" not in options.create and "entrypoint" not in options.create
    assert options.host_config["binds"] == []
    with pytest.raises(InvalidTaskSpec, match="relative hostPath"):
        container_options(ContainerLaunch(task_id="t4", image="img", env={}, labels={},
                                          volumes=(VolumeMount("rel", "/x"),)))


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, v, _, _ in PARAMETER_CASES],
                         ids=[f"{k}={v}" for k, v, _, _ in PARAMETER_CASES])
def test_every_mapping_is_accepted_by_the_docker_sdk(key: str, value: str) -> None:
    import inspect

    from docker.api.container import ContainerApiMixin
    from docker.types import HostConfig

    options = container_options(ContainerLaunch(task_id="t", image="img", env={}, labels={}, network="net",
                                                parameters=((key, value),)))
    HostConfig(version="1.41", **options.host_config)   # raises on an unknown or mistyped argument
    assert set(options.create) <= set(inspect.signature(ContainerApiMixin.create_container).parameters)


UUID_TASK = "shop_web.instance-0b5e4c2a-9f1d-4c3e-8a7b-123456789abc._app.1"


def test_a_named_container_gets_a_suffix_per_task() -> None:
    def name(task_id: str, *parameters: tuple[str, str]) -> str:
        spec = ContainerLaunch(task_id=task_id, image="img", env={}, labels={}, parameters=parameters)
        return container_options(spec).create["name"]

    assert name(UUID_TASK, ("name", "kdc")) == "kdc-0b5e4c2a9f1d"
    assert name(UUID_TASK.replace("0b5e", "1c6f"), ("name", "kdc")) == "kdc-1c6f4c2a9f1d"
    assert name("legacy.task", ("name", "kdc")).startswith("kdc-") and len(name("legacy.task", ("name", "kdc"))) == 16
    assert name(UUID_TASK, ("name", "a"), ("--name", "b")) == "b-0b5e4c2a9f1d"      # the last one wins
    assert name(UUID_TASK) == f"pacer-{UUID_TASK}"


def test_parameters_that_reach_past_host_config() -> None:
    spec = ContainerLaunch(task_id="t5", image="img", env={}, labels={}, network="backend", cpus=0.5,
                           port_bindings=(PortBinding(80, 31000),), sandbox=Path("/sb/t5"),
                           volumes=(VolumeMount("/srv", "data"),),
                           parameters=(("cpus", "2"), ("ip", "10.9.0.5"), ("network-alias", "db"),
                                       ("health-cmd", "true"), ("health-retries", "2"), ("expose", "9000"),
                                       ("expose", "80"), ("pull", "always"), ("memory", "1g")))
    options = container_options(spec)
    assert options.host_config["nano_cpus"] == 2 * 10**9          # replaces the quota derived from cpus
    assert "cpu_quota" not in options.host_config and "cpu_period" not in options.host_config
    assert options.host_config["cpu_shares"] == 512 and options.host_config["mem_limit"] == 1024**3
    assert options.create["networking_config"] == {
        "EndpointsConfig": {"backend": {"IPAMConfig": {"IPv4Address": "10.9.0.5"}, "Aliases": ["db"]}}}
    assert options.create["healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Retries": 2}
    assert options.create["ports"] == [("80", "tcp"), ("9000", "tcp")]     # exposed, not published
    assert options.host_config["port_bindings"] == {"80/tcp": [31000]}
    assert options.host_config["binds"][1] == "/srv:/mnt/mesos/sandbox/data:rw"   # relative: in the sandbox
    assert options.force_pull is True


def test_links_go_where_the_engine_reads_them() -> None:
    def links(network: str) -> tuple[Any, Any]:
        options = container_options(ContainerLaunch(task_id="t6", image="img", env={}, labels={}, network=network,
                                                    parameters=(("link", "db:database"),)))
        endpoint = options.create.get("networking_config", {}).get("EndpointsConfig", {}).get(network, {})
        return options.host_config.get("links"), endpoint.get("Links")

    assert links("bridge") == ({"db": "database"}, None)           # the default bridge: legacy links
    assert links("backend") == (None, ["db:database"])             # a user-defined network: its endpoint


# -- exits ---------------------------------------------------------------------------------------

EXIT_CASES = [
    ({"ExitCode": 0}, False, "TASK_FINISHED", 0, None, "Container exited with status 0", None),
    ({"ExitCode": 3}, False, "TASK_FAILED", 3, None, "Container exited with status 3", None),
    ({"ExitCode": 137}, False, "TASK_FAILED", 137, 9, "Container exited with status 137", None),
    ({"ExitCode": 143}, True, "TASK_KILLED", 143, 15, "Container exited with status 143", None),
    ({"ExitCode": 0}, True, "TASK_KILLED", 0, None, "Container exited with status 0", None),
    ({"ExitCode": 137, "OOMKilled": True}, False, "TASK_FAILED", 137, 9,
     "OOM: container exceeded its memory limit of 32 MiB (REASON_CONTAINER_LIMITATION_MEMORY); "
     "Container exited with status 137", "OOM"),
    ({"ExitCode": 137, "OOMKilled": True}, True, "TASK_KILLED", 137, 9, "Container exited with status 137", None),
    ({"ExitCode": 0, "Error": "mount failed"}, False, "TASK_FAILED", 0, None,
     "Container exited with status 0: mount failed", None),
    (None, False, "TASK_FAILED", None, None, "Container was removed outside Pacer (exit status unknown)", None),
    (None, True, "TASK_KILLED", None, None, "Container was removed outside Pacer (exit status unknown)", None),
]


@pytest.mark.parametrize(("state", "killed", "task_state", "code", "sig", "message", "reason"), EXIT_CASES)
def test_container_states_map_to_task_ends(state, killed, task_state, code, sig, message, reason) -> None:
    end = container_exit("t", state, killed=killed, mem_mb=32)
    assert (end.state, end.exit_code, end.signal, end.message, end.reason) == (task_state, code, sig, message, reason)


@pytest.mark.parametrize(("name", "number"), [("SIGTERM", 15), ("term", 15), ("9", 9), ("SIGNOPE", None)])
def test_signal_names(name: str, number: int | None) -> None:
    assert signal_number(name) == number


# -- stats ---------------------------------------------------------------------------------------

V1 = {"cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_123, "usage_in_usermode": 3_000_000_000,
                                  "usage_in_kernelmode": 2_000_000_000}},
      "memory_stats": {"usage": 100 * MiB, "limit": 256 * MiB,
                       "stats": {"total_inactive_file": 30 * MiB, "total_rss": 50 * MiB, "cache": 40 * MiB}},
      "pids_stats": {"current": 3},
      "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}}}
V2 = {"cpu_stats": {"cpu_usage": {"total_usage": 7_000, "usage_in_usermode": 4_000, "usage_in_kernelmode": 3_000}},
      "memory_stats": {"usage": 10 * MiB, "limit": 64 * MiB, "stats": {"inactive_file": 12 * MiB, "anon": 6 * MiB}},
      "pids_stats": {"current": 1}}


def test_cgroup_v1_stats() -> None:
    usage = usage_from_stats(V1, host_network=False)
    assert usage is not None
    assert (usage.cpu_ns, usage.cpu_user_ns, usage.cpu_system_ns) == (5_000_000_123, 3_000_000_000, 2_000_000_000)
    assert (usage.memory_usage_bytes, usage.memory_working_set_bytes, usage.memory_limit_bytes) == \
        (100 * MiB, 70 * MiB, 256 * MiB)
    assert (usage.rss_bytes, usage.processes, usage.rx_bytes, usage.tx_bytes) == (50 * MiB, 3, 11, 22)
    assert usage_from_stats(V1, host_network=True).rx_bytes is None


def test_cgroup_v2_stats_and_a_working_set_never_below_zero() -> None:
    usage = usage_from_stats(V2, host_network=True)
    assert usage is not None
    assert usage.cpu_ns == 7_000 and usage.rss_bytes == 6 * MiB
    assert usage.memory_working_set_bytes == 0      # inactive file pages above usage: cAdvisor's rule
    assert usage_from_stats({}, host_network=True) is None


def test_container_listing_reads_back_what_recovery_needs() -> None:
    summary = {"Id": "abc", "State": "running", "Status": "Up 3 minutes", "HostConfig": {"NetworkMode": "host"},
               "Labels": {LABEL_TASK_ID: "t", "pacer.app-id": "/a", "pacer.app-version": "v1", "pacer.ports": "31000,31001"}}
    info = container_info(summary)
    assert info is not None and info.running and info.network == "host"
    assert (info.task_id, info.app_id, info.app_version, info.ports) == ("t", "/a", "v1", (31000, 31001))
    assert container_info({"Id": "x", "Labels": {}}) is None
    assert container_info({**summary, "Labels": {LABEL_TASK_ID: "t", "pacer.ports": "x"}}).ports is None


# -- app definition → container (the backend's pure builder) -------------------------------------

def _instance(ports: tuple[int, ...]) -> Instance:
    return Instance(instance_id="web.instance-1._app.1", app_id="/web", version="2024-01-01T00:00:00.000Z",
                    config_version="c", agent_id="agent-1", host="localhost", ports=ports, service_ports=(10000,))


def test_bridge_app_publishes_container_ports_on_the_placed_host_ports(tmp_path: Path) -> None:
    app = parse_app_definition({
        "id": "/web", "args": ["serve"], "cpus": 0.5, "mem": 64, "labels": {"team": "t"}, "env": {"A": "1"},
        "networks": [{"mode": "container/bridge"}], "taskKillGracePeriodSeconds": 9,
        "container": {"type": "DOCKER",
                      "docker": {"image": "img:2", "forcePullImage": True, "privileged": True,
                                 "parameters": [{"key": "user", "value": "1000"}]},
                      "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"},
                                       {"containerPort": 0, "hostPort": 0, "protocol": "udp"}],
                      "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]}})
    assert is_docker_app(app) and docker_unsupported(app) is None
    spec = container_launch(_instance((31000, 31001)), app, tmp_path)
    assert spec.network == "bridge" and spec.args == ("serve",) and spec.shell_command is None
    assert spec.port_bindings == (PortBinding(8080, 31000, "tcp"), PortBinding(31001, 31001, "udp"))
    assert spec.volumes == (VolumeMount("/srv", "/data", read_only=True),)
    assert (spec.image, spec.force_pull, spec.privileged, spec.cpus, spec.mem_mb, spec.kill_grace_seconds) == \
        ("img:2", True, True, 0.5, 64, 9)
    assert spec.parameters == (("user", "1000"),)
    assert spec.env["PORT0"] == "31000" and spec.env["PORT_HTTP"] == "31000" and spec.env["PORT1"] == "31001"
    assert spec.env["A"] == "1" and spec.env["MARATHON_APP_DOCKER_IMAGE"] == "img:2"
    assert spec.labels == {"team": "t", "pacer.app-id": "/web", "pacer.task-id": "web.instance-1._app.1",
                           "pacer.app-version": "2024-01-01T00:00:00.000Z", "pacer.agent-id": "agent-1",
                           "pacer.ports": "31000,31001"}


def test_host_and_named_networks() -> None:
    host = parse_app_definition({"id": "/h", "cmd": "run $PORT0", "portDefinitions": [{"port": 0}],
                                 "container": {"type": "DOCKER", "docker": {"image": "img"}}})
    spec = container_launch(_instance((31005,)), host, None)
    assert (spec.network, spec.port_bindings, spec.shell_command) == ("host", (), "run $PORT0")
    named = parse_app_definition({"id": "/n", "networks": [{"mode": "container", "name": "backend"}],
                                  "container": {"type": "DOCKER", "docker": {"image": "img"},
                                                "portMappings": [{"containerPort": 80}]}})
    spec = container_launch(_instance(()), named, None)
    assert spec.network == "backend" and spec.port_bindings == ()   # no hostPort: nothing published


def test_what_the_docker_runtime_cannot_run() -> None:
    mesos = parse_app_definition({"id": "/m", "cmd": "x", "container": {"type": "MESOS", "docker": {"image": "i"}}})
    assert is_docker_app(mesos) and docker_unsupported(mesos) is None   # the UCR's image runs on the engine
    assert not is_docker_app(parse_app_definition({"id": "/p", "cmd": "x", "container": {"type": "MESOS"}}))
    persistent = parse_app_definition({"id": "/p", "cmd": "x", "container": {
        "type": "DOCKER", "docker": {"image": "i"},
        "volumes": [{"containerPath": "data", "persistent": {"size": 10}, "mode": "RW"}]}})
    assert docker_unsupported(persistent) == (
        "container.volumes[0]: persistent volumes are not supported by the Docker runtime (host volumes are)")


UCR_CASES = [
    # what the app says, what the container runs (shell command, args) and the engine settings it gets
    ({"cmd": "echo hi"}, ("echo hi", None), ()),
    ({"args": ["--verbose"]}, (None, ("--verbose",)), ()),
    ({}, (None, None), ()),
    ({"cmd": "x", "user": "nobody", "tty": True}, ("x", None), (("user", "nobody"), ("tty", "true"))),
    ({"cmd": "x", "container": {"linuxInfo": {"seccomp": {"unconfined": True}}}}, ("x", None),
     (("security-opt", "seccomp=unconfined"),)),
    ({"cmd": "x", "container": {"linuxInfo": {"ipcInfo": {"mode": "PRIVATE", "shmSize": 64}}}}, ("x", None),
     (("ipc", "private"), ("shm-size", "64m"))),
    ({"cmd": "x", "container": {"linuxInfo": {"ipcInfo": {"mode": "SHARE_PARENT"}}}}, ("x", None),
     (("ipc", "host"),)),
]


@pytest.mark.parametrize(("fields", "command", "parameters"), UCR_CASES)
def test_a_mesos_container_with_an_image_runs_it_with_the_ucrs_semantics(
        fields: dict[str, Any], command: tuple[Any, Any], parameters: tuple[tuple[str, str], ...]) -> None:
    container = {"type": "MESOS", "docker": {"image": "img:3", "forcePullImage": True},
                 **fields.pop("container", {})}
    app = parse_app_definition({"id": "/ucr", **fields, "container": container})
    assert is_docker_app(app)
    spec = container_launch(_instance((31000,)), app, None)
    assert (spec.shell_command, spec.args) == command
    assert spec.parameters == parameters and spec.force_pull and spec.network == "host"
    assert spec.env["MARATHON_APP_DOCKER_IMAGE"] == "img:3" and spec.env["PORT0"] == "31000"
    container_options(spec)   # every engine setting it carries maps


def test_a_mesos_container_with_an_image_uses_the_networks_as_docker_apps_do() -> None:
    bridged = parse_app_definition({"id": "/b", "networks": [{"mode": "container/bridge"}],
                                    "container": {"type": "MESOS", "docker": {"image": "img"},
                                                  "portMappings": [{"containerPort": 80, "hostPort": 0}]}})
    spec = container_launch(_instance((31007,)), bridged, None)
    assert spec.network == "bridge" and spec.port_bindings == (PortBinding(80, 31007, "tcp"),)
    named = parse_app_definition({"id": "/n", "networks": [{"mode": "container", "name": "backend"}],
                                  "container": {"type": "MESOS", "docker": {"image": "img"}}})
    assert container_launch(_instance(()), named, None).network == "backend"


def test_the_engines_named_networks_are_offered_by_every_agent(tmp_path: Path) -> None:
    from scheduler.backends.local import LocalBackend, build_agents

    agents = build_agents(2, {"cpus": 2, "mem": 1024, "disk": 100}, {}, networks=("calico",))
    backend = LocalBackend(agents, tmp_path, lambda update: None, docker_host=None)
    assert [o.networks for o in backend.offers({})] == [frozenset({"calico"})] * 2
    backend._engine_networks = frozenset({"backend-net"})
    assert [o.networks for o in backend.offers({})] == [frozenset({"calico", "backend-net"})] * 2
    docker_app = parse_app_definition({"id": "/d", "args": ["x"], "container": {"type": "DOCKER",
                                                                              "docker": {"image": "i"}}})
    assert backend.unsupported_reason(docker_app) == (
        "container type DOCKER: no Docker engine is configured (set DOCKER_HOST or start pacer serve with "
        "--docker-host)")
    assert backend.unsupported_reason(parse_app_definition({"id": "/p", "cmd": "x"})) is None


def test_docker_host_resolution(tmp_path: Path) -> None:
    import socket

    from scheduler.engine.build import resolve_docker_host

    missing = tmp_path / "missing.sock"
    assert resolve_docker_host("unix:///x.sock", {"DOCKER_HOST": "unix:///y.sock"}, missing) == "unix:///x.sock"
    assert resolve_docker_host("none", {"DOCKER_HOST": "unix:///y.sock"}, missing) is None
    assert resolve_docker_host(None, {"DOCKER_HOST": "unix:///y.sock"}, missing) == "unix:///y.sock"
    assert resolve_docker_host(None, {"DOCKER_HOST": ""}, missing) is None
    assert resolve_docker_host(None, {}, missing) is None
    listening = tmp_path / "d.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(listening))
        server.listen()
        assert resolve_docker_host(None, {}, listening) == f"unix://{listening}"
