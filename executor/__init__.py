"""Running one task: environment, command line, process runtime, kill, usage stats.

Pure parts (``env``, ``states``, ``procfs.parse_stat``, ``stats.usage_from_stats``)
decide; ``process`` (bookkeeping) and ``posix`` (system calls) act on processes;
``runtime`` is the Protocol the scheduler codes against and ``testing`` holds an
awaitable ``on_exit`` for tests. Errors: see ``executor.errors``.
"""

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
from executor.states import (
    TASK_FAILED,
    TASK_FINISHED,
    TASK_KILLED,
    TASK_LOST,
    TaskExit,
)
from executor.stats import ResourceUsage, process_group_usage, process_group_usages

__all__ = [
    "TASK_FAILED",
    "TASK_FINISHED",
    "TASK_KILLED",
    "TASK_LOST",
    "ExecutorError",
    "InvalidTaskSpec",
    "LaunchFailed",
    "ProcessHandle",
    "ProcessRuntime",
    "ResourceUsage",
    "RuntimeClosed",
    "TaskAlreadyRunning",
    "TaskExit",
    "TaskLaunch",
    "TaskRuntime",
    "kill_process_group",
    "marathon_task_env",
    "process_alive",
    "process_environment",
    "process_group_usage",
    "process_group_usages",
    "read_start_time",
    "task_command",
]
