"""App definitions: Marathon v2 app JSON in, validated immutable models out.

The one door is :func:`parse_app_definition`: it accepts every spelling
Marathon accepts (deprecated fields included), reports every violation at
once with Marathon's JSON paths and messages (:class:`ValidationFailed`,
HTTP 422), and returns a canonical :class:`AppDefinition` whose
:meth:`~AppDefinition.to_json` is Marathon's GET form. Around it: decoding
bodies (:func:`parse_json_body`, HTTP 400), partial updates and rollbacks,
path ids, per-environment files and the JSON schema.

Depends on the standard library and pydantic only; everything here is pure
except :func:`load_environment_definition`, which reads the files it is
given.
"""

from .app import DEFAULT_TASK_KILL_GRACE_SECONDS, SINGLE_INSTANCE_LABEL, AppDefinition
from .checks import (
    MARATHON_PROTOCOLS,
    MESOS_PROTOCOLS,
    AppCheck,
    CommandCheck,
    ExecCheck,
    HealthCheck,
    HttpCheck,
    MesosCommand,
    ReadinessCheck,
    TcpCheck,
)
from .constraints import CONSTRAINT_OPERATORS, Constraint, parse_constraint
from .container import (
    Container,
    DockerContainer,
    DockerParameter,
    DockerPullConfig,
    ExternalVolume,
    PersistentVolume,
    Volume,
)
from .environments import definition_diff, environment_definition, load_environment_definition, overlay_path
from .errors import DefinitionError, EnvironmentFileError, InvalidJSON, ValidationFailed, Violation
from .json_body import parse_json_body
from .networking import Network, NetworkMode, PortDefinition, PortMapping, PortSpec
from .parse import parse_app_definition
from .path_id import canonical_path_id, parent_of
from .resources import EnvSecretRef, ExecutorResources, FetchUri, ResourceLimits, SecretDef
from .schema import app_json_schema
from .strategies import KillSelection, Residency, UnreachableStrategy, UpgradeStrategy, VersionInfo
from .update import SERVER_FIELDS, apply_app_update, is_rollback_request, is_upgrade, merge_patch

__all__ = [
    "CONSTRAINT_OPERATORS",
    "DEFAULT_TASK_KILL_GRACE_SECONDS",
    "MARATHON_PROTOCOLS",
    "MESOS_PROTOCOLS",
    "SERVER_FIELDS",
    "SINGLE_INSTANCE_LABEL",
    "AppCheck",
    "AppDefinition",
    "CommandCheck",
    "Constraint",
    "Container",
    "DefinitionError",
    "DockerContainer",
    "DockerParameter",
    "DockerPullConfig",
    "EnvSecretRef",
    "EnvironmentFileError",
    "ExecCheck",
    "ExecutorResources",
    "ExternalVolume",
    "FetchUri",
    "HealthCheck",
    "HttpCheck",
    "InvalidJSON",
    "KillSelection",
    "MesosCommand",
    "Network",
    "NetworkMode",
    "PersistentVolume",
    "PortDefinition",
    "PortMapping",
    "PortSpec",
    "ReadinessCheck",
    "Residency",
    "ResourceLimits",
    "SecretDef",
    "TcpCheck",
    "UnreachableStrategy",
    "UpgradeStrategy",
    "ValidationFailed",
    "VersionInfo",
    "Violation",
    "Volume",
    "app_json_schema",
    "apply_app_update",
    "canonical_path_id",
    "definition_diff",
    "environment_definition",
    "is_rollback_request",
    "is_upgrade",
    "load_environment_definition",
    "merge_patch",
    "overlay_path",
    "parent_of",
    "parse_app_definition",
    "parse_constraint",
    "parse_json_body",
]
