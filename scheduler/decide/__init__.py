"""Pure decisions: placement, constraints, kill selection, restart math, backoff, service ports and the scheduling pass `decide`. No I/O, no clock reads."""
