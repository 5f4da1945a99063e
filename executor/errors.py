"""The one exception tree of the executor package.

Callers (the scheduler's embedded backend, for processes and containers) catch
``ExecutorError`` to handle anything this package raises, or a leaf when they
react differently: a ``LaunchFailed`` becomes a TASK_FAILED status for the
instance, while ``InvalidTaskSpec`` is a bug upstream (validation should have
caught it) and ``RuntimeClosed`` a shutdown ordering problem.

Expected outcomes are *not* exceptions: a task ending, an adoption that finds
the process gone (``ProcessRuntime.adopt`` returns False) or a kill of an
unknown task are ordinary results.

    ExecutorError
    ├── InvalidTaskSpec          a task description that cannot be run at all
    ├── LaunchFailed             the OS refused to start the process (message = OS message)
    │   └── TaskAlreadyRunning   a live task with the same id is already in this runtime
    ├── RuntimeClosed            launch/adopt on a runtime after close()
    ├── RecordIOError            a Mesos event stream whose framing is broken
    └── MesosExecutorError       Pacer as a Mesos custom executor (``pacer executor``)
        ├── BadEnvironment       a MESOS_* variable the agent should have set is missing or wrong
        └── AgentUnreachable     the agent's executor API did not answer (within the recovery timeout)
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Base of every error raised by the executor package."""


class InvalidTaskSpec(ExecutorError):
    """The task cannot be described as a process: no command, bad port names.

    Raised by the pure builders, so it never means that anything was started.
    """


class LaunchFailed(ExecutorError):
    """The process could not be started; the message carries the OS's reason.

    Nothing is left running when this is raised (the sandbox directory may
    remain, as a Mesos sandbox does, so its files can be inspected).
    """


class TaskAlreadyRunning(LaunchFailed):
    """A task with this id is still running in this runtime.

    A subclass of ``LaunchFailed`` so callers that treat every failed launch
    alike need no extra clause; task ids are unique per incarnation, so this
    signals a scheduler bug rather than an operator error.
    """


class RuntimeClosed(ExecutorError):
    """The runtime was closed; it no longer starts or watches processes."""


class RecordIOError(ExecutorError):
    """A RecordIO stream (Mesos's event framing) cannot be decoded: the stream is unusable."""


class MesosExecutorError(ExecutorError):
    """Base of what ``pacer executor`` (the v1 executor API client) raises."""


class BadEnvironment(MesosExecutorError):
    """The agent's ``MESOS_*`` environment is incomplete or malformed; the message names the variable."""


class AgentUnreachable(MesosExecutorError):
    """The agent's ``/api/v1/executor`` did not answer (for longer than ``MESOS_RECOVERY_TIMEOUT``)."""
