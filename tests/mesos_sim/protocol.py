"""The v1 scheduler API's messages, as schema tables, and a strict validator of their JSON.

The tables are transcribed from `include/mesos/v1/mesos.proto` and
`include/mesos/v1/scheduler/scheduler.proto` of github:apache/mesos (commit c1b42f79d157, 2024-08)
and cover every message a scheduler sends and every event the simulator emits. Mesos's JSON
mapping (stout's `protobuf::parse` / `JSON::Protobuf`) is used: proto field names (snake_case),
enums by name, `bytes` as base64, 64-bit integers as JSON numbers, maps as JSON objects.

One spec string per field: a scalar type (`string`, `bytes`, `bool`, `double`, `int32`,
`int64`, `uint32`, `uint64`), `enum:<Enum>` or a message name, then `!` (required) or `*`
(repeated); `map:<type>` is a map with string keys. A `~` marks a field that exists in the
proto but is not modelled here: the validator refuses it like an unknown field, with a message
that says so, because no scheduler Pacer ships sends it.

`validate` is stricter than a real master on purpose. A master ignores unknown fields and
coerces strings to numbers; this one answers 400 naming the field, so a misnamed field fails a
test instead of being dropped silently in production.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from executor.recordio import encode

MESSAGES: dict[str, dict[str, str]] = {
    "Call": {"framework_id": "FrameworkID", "type": "enum:Call.Type", "subscribe": "Call.Subscribe",
        "accept": "Call.Accept", "decline": "Call.Decline", "accept_inverse_offers": "~Call.AcceptInverseOffers",
        "decline_inverse_offers": "~Call.DeclineInverseOffers", "revive": "Call.Revive", "kill": "Call.Kill",
        "shutdown": "Call.Shutdown", "acknowledge": "Call.Acknowledge",
        "acknowledge_operation_status": "~Call.AcknowledgeOperationStatus", "reconcile": "Call.Reconcile",
        "reconcile_operations": "~Call.ReconcileOperations", "message": "~Call.Message", "request": "~Call.Request",
        "suppress": "Call.Suppress", "update_framework": "~Call.UpdateFramework"},
    "Call.Subscribe": {"framework_info": "FrameworkInfo!", "suppressed_roles": "string*",
        "offer_constraints": "~OfferConstraints"},
    "Call.Accept": {"offer_ids": "OfferID*", "operations": "Offer.Operation*", "filters": "Filters"},
    "Call.Decline": {"offer_ids": "OfferID*", "filters": "Filters"},
    "Call.Revive": {"roles": "string*"},
    "Call.Suppress": {"roles": "string*"},
    "Call.Kill": {"task_id": "TaskID!", "agent_id": "AgentID", "kill_policy": "KillPolicy"},
    "Call.Acknowledge": {"agent_id": "AgentID!", "task_id": "TaskID!", "uuid": "bytes!"},
    "Call.Reconcile": {"tasks": "Call.Reconcile.Task*"},
    "Call.Reconcile.Task": {"task_id": "TaskID!", "agent_id": "AgentID"},
    "Call.Shutdown": {"executor_id": "ExecutorID!", "agent_id": "AgentID!"},
    "Event": {"type": "enum:Event.Type", "subscribed": "Event.Subscribed", "offers": "Event.Offers",
        "inverse_offers": "~Event.InverseOffers", "rescind": "Event.Rescind",
        "rescind_inverse_offer": "~Event.RescindInverseOffer", "update": "Event.Update",
        "update_operation_status": "~Event.UpdateOperationStatus", "message": "Event.Message",
        "failure": "Event.Failure", "error": "Event.Error"},
    "Event.Subscribed": {"framework_id": "FrameworkID!", "heartbeat_interval_seconds": "double",
        "master_info": "MasterInfo"},
    "Event.Offers": {"offers": "Offer*"},
    "Event.Rescind": {"offer_id": "OfferID!"},
    "Event.Update": {"status": "TaskStatus!"},
    "Event.Message": {"agent_id": "AgentID!", "executor_id": "ExecutorID!", "data": "bytes!"},
    "Event.Failure": {"agent_id": "AgentID", "executor_id": "ExecutorID", "status": "int32"},
    "Event.Error": {"message": "string!"},
    "FrameworkID": {"value": "string!"},
    "OfferID": {"value": "string!"},
    "AgentID": {"value": "string!"},
    "TaskID": {"value": "string!"},
    "ExecutorID": {"value": "string!"},
    "TimeInfo": {"nanoseconds": "int64!"},
    "DurationInfo": {"nanoseconds": "int64!"},
    "Address": {"hostname": "string", "ip": "string", "port": "int32!"},
    "MasterInfo": {"id": "string!", "ip": "uint32!", "port": "uint32!", "pid": "string", "hostname": "string",
        "version": "string", "address": "Address", "domain": "DomainInfo", "capabilities": "MasterInfo.Capability*"},
    "MasterInfo.Capability": {"type": "enum:MasterInfo.Capability.Type"},
    "DomainInfo": {"fault_domain": "DomainInfo.FaultDomain"},
    "DomainInfo.FaultDomain": {"region": "DomainInfo.FaultDomain.RegionInfo!",
        "zone": "DomainInfo.FaultDomain.ZoneInfo!"},
    "DomainInfo.FaultDomain.RegionInfo": {"name": "string!"},
    "DomainInfo.FaultDomain.ZoneInfo": {"name": "string!"},
    "FrameworkInfo": {"user": "string!", "name": "string!", "id": "FrameworkID", "failover_timeout": "double",
        "checkpoint": "bool", "role": "string", "roles": "string*", "hostname": "string", "principal": "string",
        "webui_url": "string", "capabilities": "FrameworkInfo.Capability*", "labels": "Labels",
        "offer_filters": "map:~OfferFilters"},
    "FrameworkInfo.Capability": {"type": "enum:FrameworkInfo.Capability.Type"},
    "Labels": {"labels": "Label*"},
    "Label": {"key": "string!", "value": "string"},
    "Filters": {"refuse_seconds": "double"},
    "Offer": {"id": "OfferID!", "framework_id": "FrameworkID!", "agent_id": "AgentID!", "hostname": "string!",
        "url": "~URL", "domain": "DomainInfo", "resources": "Resource*", "attributes": "Attribute*",
        "executor_ids": "ExecutorID*", "unavailability": "~Unavailability",
        "allocation_info": "Resource.AllocationInfo"},
    "Offer.Operation": {"type": "enum:Offer.Operation.Type", "id": "~OperationID",
        "launch": "Offer.Operation.Launch", "launch_group": "~Offer.Operation.LaunchGroup",
        "reserve": "~Offer.Operation.Reserve", "unreserve": "~Offer.Operation.Unreserve",
        "create": "~Offer.Operation.Create", "destroy": "~Offer.Operation.Destroy",
        "grow_volume": "~Offer.Operation.GrowVolume", "shrink_volume": "~Offer.Operation.ShrinkVolume",
        "create_disk": "~Offer.Operation.CreateDisk", "destroy_disk": "~Offer.Operation.DestroyDisk"},
    "Offer.Operation.Launch": {"task_infos": "TaskInfo*"},
    "Resource": {"provider_id": "~ResourceProviderID", "name": "string!", "type": "enum:Value.Type!",
        "scalar": "Value.Scalar", "ranges": "Value.Ranges", "set": "Value.Set", "role": "string",
        "allocation_info": "Resource.AllocationInfo", "reservation": "Resource.ReservationInfo",
        "reservations": "Resource.ReservationInfo*", "disk": "~Resource.DiskInfo",
        "revocable": "~Resource.RevocableInfo", "shared": "~Resource.SharedInfo"},
    "Resource.AllocationInfo": {"role": "string"},
    "Resource.ReservationInfo": {"type": "enum:Resource.ReservationInfo.Type", "role": "string",
        "principal": "string", "labels": "Labels"},
    "Value": {"type": "enum:Value.Type!", "scalar": "Value.Scalar", "ranges": "Value.Ranges", "set": "Value.Set",
        "text": "Value.Text"},
    "Value.Scalar": {"value": "double!"},
    "Value.Ranges": {"range": "Value.Range*"},
    "Value.Range": {"begin": "uint64!", "end": "uint64!"},
    "Value.Set": {"item": "string*"},
    "Value.Text": {"value": "string!"},
    "Attribute": {"name": "string!", "type": "enum:Value.Type!", "scalar": "Value.Scalar", "ranges": "Value.Ranges",
        "set": "Value.Set", "text": "Value.Text"},
    "TaskInfo": {"name": "string!", "task_id": "TaskID!", "agent_id": "AgentID!", "resources": "Resource*",
        "executor": "ExecutorInfo", "command": "CommandInfo", "container": "ContainerInfo",
        "health_check": "HealthCheck", "check": "~CheckInfo", "kill_policy": "KillPolicy", "data": "bytes",
        "labels": "Labels", "discovery": "DiscoveryInfo", "max_completion_time": "DurationInfo",
        "limits": "map:Value.Scalar"},
    "ExecutorInfo": {"type": "enum:ExecutorInfo.Type", "executor_id": "ExecutorID!", "framework_id": "FrameworkID",
        "command": "CommandInfo", "container": "ContainerInfo", "resources": "Resource*", "name": "string",
        "source": "~string", "data": "bytes", "discovery": "DiscoveryInfo", "shutdown_grace_period": "DurationInfo",
        "labels": "Labels"},
    "CommandInfo": {"uris": "CommandInfo.URI*", "environment": "Environment", "shell": "bool", "value": "string",
        "arguments": "string*", "user": "string"},
    "CommandInfo.URI": {"value": "string!", "executable": "bool", "extract": "bool", "cache": "bool",
        "output_file": "string"},
    "Environment": {"variables": "Environment.Variable*"},
    "Environment.Variable": {"name": "string!", "type": "enum:Environment.Variable.Type", "value": "string",
        "secret": "~Secret"},
    "KillPolicy": {"grace_period": "DurationInfo"},
    "DiscoveryInfo": {"visibility": "enum:DiscoveryInfo.Visibility!", "name": "string", "environment": "string",
        "location": "string", "version": "string", "ports": "Ports", "labels": "Labels"},
    "Ports": {"ports": "Port*"},
    "Port": {"number": "uint32!", "name": "string", "protocol": "string",
        "visibility": "enum:DiscoveryInfo.Visibility", "labels": "Labels"},
    "ContainerInfo": {"type": "enum:ContainerInfo.Type!", "volumes": "Volume*", "hostname": "string",
        "docker": "ContainerInfo.DockerInfo", "mesos": "ContainerInfo.MesosInfo", "network_infos": "NetworkInfo*",
        "linux_info": "~LinuxInfo", "rlimit_info": "~RLimitInfo", "tty_info": "~TTYInfo"},
    "ContainerInfo.DockerInfo": {"image": "string!", "network": "enum:ContainerInfo.DockerInfo.Network",
        "port_mappings": "ContainerInfo.DockerInfo.PortMapping*", "privileged": "bool", "parameters": "Parameter*",
        "force_pull_image": "bool", "volume_driver": "string"},
    "ContainerInfo.DockerInfo.PortMapping": {"host_port": "uint32!", "container_port": "uint32!",
        "protocol": "string"},
    "ContainerInfo.MesosInfo": {"image": "Image"},
    "Image": {"type": "enum:Image.Type!", "appc": "~Image.Appc", "docker": "Image.Docker", "cached": "bool"},
    "Image.Docker": {"name": "string!", "credential": "~Credential", "config": "~Secret"},
    "Parameter": {"key": "string!", "value": "string!"},
    "Parameters": {"parameter": "Parameter*"},
    "Volume": {"mode": "enum:Volume.Mode!", "container_path": "string!", "host_path": "string", "image": "Image",
        "source": "~Volume.Source"},
    "NetworkInfo": {"ip_addresses": "NetworkInfo.IPAddress*", "name": "string", "groups": "string*",
        "labels": "Labels", "port_mappings": "NetworkInfo.PortMapping*"},
    "NetworkInfo.IPAddress": {"protocol": "enum:NetworkInfo.Protocol", "ip_address": "string"},
    "NetworkInfo.PortMapping": {"host_port": "uint32!", "container_port": "uint32!", "protocol": "string"},
    "HealthCheck": {"delay_seconds": "double", "interval_seconds": "double", "timeout_seconds": "double",
        "consecutive_failures": "uint32", "grace_period_seconds": "double", "type": "enum:HealthCheck.Type",
        "command": "CommandInfo", "http": "HealthCheck.HTTPCheckInfo", "tcp": "HealthCheck.TCPCheckInfo"},
    "HealthCheck.HTTPCheckInfo": {"protocol": "enum:NetworkInfo.Protocol", "scheme": "string", "port": "uint32!",
        "path": "string", "statuses": "uint32*"},
    "HealthCheck.TCPCheckInfo": {"protocol": "enum:NetworkInfo.Protocol", "port": "uint32!"},
    "TaskStatus": {"task_id": "TaskID!", "state": "enum:TaskState!", "message": "string",
        "source": "enum:TaskStatus.Source", "reason": "enum:TaskStatus.Reason", "data": "bytes",
        "agent_id": "AgentID", "executor_id": "ExecutorID", "timestamp": "double", "uuid": "bytes",
        "healthy": "bool", "check_status": "CheckStatusInfo", "labels": "Labels",
        "container_status": "~ContainerStatus", "unreachable_time": "TimeInfo",
        "limitation": "~TaskResourceLimitation"},
    "CheckStatusInfo": {"type": "enum:CheckInfo.Type", "command": "~CheckStatusInfo.Command",
        "http": "~CheckStatusInfo.Http", "tcp": "~CheckStatusInfo.Tcp"},
}

ENUMS: dict[str, tuple[str, ...]] = {
    "Call.Type": ('UNKNOWN', 'SUBSCRIBE', 'TEARDOWN', 'ACCEPT', 'DECLINE', 'ACCEPT_INVERSE_OFFERS',
        'DECLINE_INVERSE_OFFERS', 'REVIVE', 'KILL', 'SHUTDOWN', 'ACKNOWLEDGE', 'ACKNOWLEDGE_OPERATION_STATUS',
        'RECONCILE', 'RECONCILE_OPERATIONS', 'MESSAGE', 'REQUEST', 'SUPPRESS', 'UPDATE_FRAMEWORK'),
    "CheckInfo.Type": ('UNKNOWN', 'COMMAND', 'HTTP', 'TCP'),
    "ContainerInfo.DockerInfo.Network": ('HOST', 'BRIDGE', 'NONE', 'USER'),
    "ContainerInfo.Type": ('DOCKER', 'MESOS'),
    "DiscoveryInfo.Visibility": ('FRAMEWORK', 'CLUSTER', 'EXTERNAL'),
    "ExecutorInfo.Type": ('UNKNOWN', 'DEFAULT', 'CUSTOM'),
    "Environment.Variable.Type": ('UNKNOWN', 'VALUE', 'SECRET'),
    "Event.Type": ('UNKNOWN', 'SUBSCRIBED', 'OFFERS', 'INVERSE_OFFERS', 'RESCIND', 'RESCIND_INVERSE_OFFER', 'UPDATE',
        'UPDATE_OPERATION_STATUS', 'MESSAGE', 'FAILURE', 'ERROR', 'HEARTBEAT'),
    "FrameworkInfo.Capability.Type": ('UNKNOWN', 'REVOCABLE_RESOURCES', 'TASK_KILLING_STATE', 'GPU_RESOURCES',
        'SHARED_RESOURCES', 'PARTITION_AWARE', 'MULTI_ROLE', 'RESERVATION_REFINEMENT', 'REGION_AWARE'),
    "HealthCheck.Type": ('UNKNOWN', 'COMMAND', 'HTTP', 'TCP'),
    "Image.Type": ('APPC', 'DOCKER'),
    "MasterInfo.Capability.Type": ('UNKNOWN', 'AGENT_UPDATE', 'AGENT_DRAINING', 'QUOTA_V2'),
    "NetworkInfo.Protocol": ('IPv4', 'IPv6'),
    "Offer.Operation.Type": ('UNKNOWN', 'LAUNCH', 'LAUNCH_GROUP', 'RESERVE', 'UNRESERVE', 'CREATE', 'DESTROY',
        'GROW_VOLUME', 'SHRINK_VOLUME', 'CREATE_DISK', 'DESTROY_DISK'),
    "Resource.ReservationInfo.Type": ('UNKNOWN', 'STATIC', 'DYNAMIC'),
    "TaskState": ('TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING', 'TASK_FINISHED', 'TASK_FAILED',
        'TASK_KILLED', 'TASK_ERROR', 'TASK_LOST', 'TASK_DROPPED', 'TASK_UNREACHABLE', 'TASK_GONE',
        'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN'),
    "TaskStatus.Reason": ('REASON_COMMAND_EXECUTOR_FAILED', 'REASON_CONTAINER_LAUNCH_FAILED',
        'REASON_CONTAINER_LIMITATION', 'REASON_CONTAINER_LIMITATION_DISK', 'REASON_CONTAINER_LIMITATION_MEMORY',
        'REASON_CONTAINER_PREEMPTED', 'REASON_CONTAINER_UPDATE_FAILED', 'REASON_MAX_COMPLETION_TIME_REACHED',
        'REASON_EXECUTOR_REGISTRATION_TIMEOUT', 'REASON_EXECUTOR_REREGISTRATION_TIMEOUT',
        'REASON_EXECUTOR_TERMINATED', 'REASON_EXECUTOR_UNREGISTERED', 'REASON_FRAMEWORK_REMOVED', 'REASON_GC_ERROR',
        'REASON_INVALID_FRAMEWORKID', 'REASON_INVALID_OFFERS', 'REASON_IO_SWITCHBOARD_EXITED',
        'REASON_MASTER_DISCONNECTED', 'REASON_RECONCILIATION', 'REASON_RESOURCES_UNKNOWN',
        'REASON_AGENT_DISCONNECTED', 'REASON_AGENT_DRAINING', 'REASON_AGENT_REMOVED',
        'REASON_AGENT_REMOVED_BY_OPERATOR', 'REASON_AGENT_REREGISTERED', 'REASON_AGENT_RESTARTED',
        'REASON_AGENT_UNKNOWN', 'REASON_TASK_KILLED_DURING_LAUNCH', 'REASON_TASK_CHECK_STATUS_UPDATED',
        'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED', 'REASON_TASK_GROUP_INVALID', 'REASON_TASK_GROUP_UNAUTHORIZED',
        'REASON_TASK_INVALID', 'REASON_TASK_UNAUTHORIZED', 'REASON_TASK_UNKNOWN'),
    "TaskStatus.Source": ('SOURCE_MASTER', 'SOURCE_AGENT', 'SOURCE_EXECUTOR'),
    "Value.Type": ('SCALAR', 'RANGES', 'SET', 'TEXT'),
    "Volume.Mode": ('RW', 'RO'),

}

INT_BOUNDS: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
}
SCALARS = frozenset({"string", "bytes", "bool", "double", "float", *INT_BOUNDS})


class ProtocolError(ValueError):
    """A message does not fit its proto; `path` names the field (`subscribe.framework_info.name`)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '<message>'}: {problem}")
        self.path = path
        self.problem = problem


def _spec(spec: str) -> tuple[str, str]:
    """('required' | 'repeated' | 'map' | 'optional', element type) of a field spec."""
    if spec.startswith("map:"):
        return "map", spec[4:]
    if spec.endswith("!"):
        return "required", spec[:-1]
    if spec.endswith("*"):
        return "repeated", spec[:-1]
    return "optional", spec


# The tables, parsed once: message -> field -> (label, element type), and its required fields.
# An ACCEPT of a large cluster carries thousands of TaskInfos; they are all checked, quickly.
_FIELDS: dict[str, dict[str, tuple[str, str]]] = {m: {n: _spec(f) for n, f in fs.items()} for m, fs in MESSAGES.items()}
_REQUIRED: dict[str, tuple[str, ...]] = {m: tuple(n for n, (label, _) in fs.items() if label == "required")
                                         for m, fs in _FIELDS.items()}

# Where a value sits, written out only when a problem is reported: (parent, piece), a piece
# being `.name`, an index or `['key']`; the root is the path the caller gave.
Where = tuple[Any, str | int] | str


def _render(where: Where) -> str:
    pieces: list[str | int] = []
    while not isinstance(where, str):
        where, piece = where
        pieces.append(piece)
    text = where
    for piece in reversed(pieces):
        if isinstance(piece, int):
            text += f"[{piece}]"
        elif piece.startswith("."):
            text = f"{text}.{piece[1:]}" if text else piece[1:]
        else:
            text += piece
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SCALAR_OK = {"string": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
              "double": _is_number, "float": _is_number, **{k: _is_integer for k in INT_BOUNDS}}


def _check_scalar(kind: str, value: Any, where: Where) -> None:
    if kind == "bytes":
        if not isinstance(value, str):
            raise ProtocolError(_render(where), f"expected a base64 string (bytes), got {type(value).__name__}")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(_render(where), "not valid base64 (bytes fields are base64 in JSON)") from None
        return
    if not _SCALAR_OK[kind](value):
        raise ProtocolError(_render(where), f"expected {kind}, got {type(value).__name__} {value!r}")
    bounds = INT_BOUNDS.get(kind)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ProtocolError(_render(where), f"{value} is out of range for {kind}")


def _check_value(kind: str, value: Any, where: Where) -> None:
    if kind in _FIELDS:
        _validate(kind, value, where)
    elif kind in SCALARS:
        _check_scalar(kind, value, where)
    elif kind.startswith("enum:"):
        names = ENUMS[kind[5:]]
        if not isinstance(value, str) or value not in names:
            raise ProtocolError(_render(where), f"{value!r} is not a value of enum {kind[5:]}")
    elif kind.startswith("~"):
        raise ProtocolError(_render(where), f"{kind[1:]} is a v1 field the simulator does not model")
    else:
        raise KeyError(kind)


def validate(message: str, value: Any, path: str = "") -> None:
    """Raise `ProtocolError` unless `value` is exactly a JSON-mapped `message`."""
    _validate(message, value, path)


def _validate(message: str, value: Any, path: Where) -> None:
    fields = _FIELDS[message]
    if not isinstance(value, Mapping):
        raise ProtocolError(_render(path), f"expected a JSON object ({message}), got {type(value).__name__}")
    for name, item in value.items():
        spec = fields.get(name)
        where: Where = (path, "." + name)
        if spec is None:
            raise ProtocolError(_render(where), f"unknown field of {message}")
        label, kind = spec
        if item is None:
            raise ProtocolError(_render(where), "null is not a value (leave the field out)")
        if label == "repeated":
            if not isinstance(item, list):
                raise ProtocolError(_render(where), f"repeated field: expected a JSON array, got {type(item).__name__}")
            for i, element in enumerate(item):
                _check_value(kind, element, (where, i))
        elif label == "map":
            if not isinstance(item, Mapping):
                raise ProtocolError(_render(where), f"map field: expected a JSON object, got {type(item).__name__}")
            for key, element in item.items():
                _check_value(kind, element, (where, f"[{key!r}]"))
        else:
            _check_value(kind, item, where)
    for name in _REQUIRED[message]:
        if name not in value:
            raise ProtocolError(_render((path, "." + name)), f"required field of {message} is missing")


def register(messages: Mapping[str, Mapping[str, str]], enums: Mapping[str, tuple[str, ...]]) -> None:
    """Add more message tables (the executor API's, `executor_protocol`) to the validator; names
    must not clash with the scheduler API's."""
    clash = (set(messages) & set(MESSAGES)) | (set(enums) & set(ENUMS))
    if clash:
        raise ValueError(f"already defined: {sorted(clash)}")
    ENUMS.update(enums)
    for name, fields in messages.items():
        MESSAGES[name] = dict(fields)
        _FIELDS[name] = {n: _spec(f) for n, f in fields.items()}
        _REQUIRED[name] = tuple(n for n, (label, _) in _FIELDS[name].items() if label == "required")


def recordio(record: bytes) -> bytes:
    """One RecordIO frame: the length in decimal, a newline, the bytes (Pacer's own codec)."""
    return encode(record)
