"""What the scheduler knows: the records (apps, instances), the clock, the `Store` seam and `ClusterState`, the one owner of state."""
