"""haproxy_bridge package."""
