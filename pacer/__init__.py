"""The `pacer` command and the wiring of every service into one process.

This package sits above all others: it is the only place that imports the scheduler, the
HAProxy bridge and the autoscaler together (`pacer serve` runs them side by side).
"""
