"""The scheduler: desired state, the pure decisions over it, and the engine that acts on them (see docs/architecture.md)."""
