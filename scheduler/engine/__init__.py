"""The engine: the scheduling loop (view → decide → apply), the task runner, the write path, the event bus, and the wiring of one scheduler."""
