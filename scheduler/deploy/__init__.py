"""Deployments as values: plans built from original and target apps, groups, running deployments and how they move on. Pure."""
