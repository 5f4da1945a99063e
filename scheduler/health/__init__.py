"""Health and readiness checks: the pure bookkeeping of check results, the probes on their own thread, and the checker that schedules them."""
