"""Running one task: environment, command line, process runtime, kill, usage stats.

Pure parts (``env``, ``states``, ``procfs.parse_stat``, ``stats.usage_from_stats``,
``cgroup_limits``, ``sandboxes.choose_removals``) decide; ``process`` (bookkeeping), ``starting``
(the blocking half of a launch), ``posix`` (system calls), ``cgroups`` (per-task cgroups:
limits, kill of every descendant) and ``cgroup_spawn`` (tasks born inside their v1 cgroups from
a spawner thread) act on processes; ``logger`` (a task's own log writer process) and ``task_logs`` (the scheduler's side)
cap and rotate task output; ``sandboxes`` collects ended tasks' sandboxes;
``mesos_executor`` runs tasks as a Mesos custom executor (``pacer executor``, the v1 executor
API; ``mesos_protocol`` is its pure part, ``recordio`` the stream framing both APIs share);
``runtime`` is the Protocol the scheduler codes against and ``testing`` holds an
awaitable ``on_exit`` for tests. Errors: see ``executor.errors``.
"""

from executor.cgroups import (
    CGROUPS_V1,
    CGROUPS_V2,
    DEFAULT_PIDS_MAX,
    PROCESS_GROUP,
    CgroupOptions,
    Cgroups,
    Unavailable,
    open_cgroups,
)
from executor.env import marathon_task_env, process_environment, task_command
from executor.errors import (
    ExecutorError,
    InvalidTaskSpec,
    LaunchFailed,
    RuntimeClosed,
    TaskAlreadyRunning,
)
from executor.process import (
    ProcessHandle,
    ProcessRuntime,
    TaskLaunch,
    kill_process_group,
    process_alive,
    read_start_time,
)
from executor.runtime import TaskRuntime
from executor.sandboxes import DiskPolicy
from executor.states import (
    TASK_FAILED,
    TASK_FINISHED,
    TASK_KILLED,
    TASK_LOST,
    TaskExit,
)
from executor.stats import ResourceUsage, process_group_usage, process_group_usages, task_usages
from executor.task_logs import LogPolicy

__all__ = [
    "CGROUPS_V1",
    "CGROUPS_V2",
    "DEFAULT_PIDS_MAX",
    "PROCESS_GROUP",
    "TASK_FAILED",
    "TASK_FINISHED",
    "TASK_KILLED",
    "TASK_LOST",
    "CgroupOptions",
    "Cgroups",
    "DiskPolicy",
    "ExecutorError",
    "InvalidTaskSpec",
    "LaunchFailed",
    "LogPolicy",
    "ProcessHandle",
    "ProcessRuntime",
    "ResourceUsage",
    "RuntimeClosed",
    "TaskAlreadyRunning",
    "TaskExit",
    "TaskLaunch",
    "TaskRuntime",
    "Unavailable",
    "kill_process_group",
    "marathon_task_env",
    "open_cgroups",
    "process_alive",
    "process_environment",
    "process_group_usage",
    "process_group_usages",
    "read_start_time",
    "task_command",
    "task_usages",
]
