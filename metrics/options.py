"""What `pacer serve` / `pacer autoscaler` were told about metrics (plain data)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MetricsConfigError

DEFAULT_DATABASE = "cadvisor"   # cAdvisor's default, so its dashboards work unchanged


@dataclass(frozen=True)
class MetricsOptions:
    interval: float = 10.0                  # --metrics-interval: seconds between task samples
    influxdb_url: str | None = None         # v1 HTTP API (/write, /query)
    influxdb_database: str | None = None
    influxdb_user: str | None = None
    influxdb_password: str | None = None
    influxdb_v2_url: str | None = None      # v2 API through influxdb-client (write API, Flux)
    influxdb_v2_token: str | None = None
    influxdb_v2_org: str | None = None
    influxdb_v2_bucket: str | None = None
    retention: float = 3600.0               # embedded store: seconds of samples kept per series

    @property
    def kind(self) -> str:
        """"influxdb-v1", "influxdb-v2" or "embedded"; raises MetricsConfigError if contradictory."""
        self.validate()
        if self.influxdb_url:
            return "influxdb-v1"
        if self.influxdb_v2_url:
            return "influxdb-v2"
        return "embedded"

    @property
    def database(self) -> str:
        return self.influxdb_database or DEFAULT_DATABASE

    def validate(self) -> None:
        if not self.interval > 0:
            raise MetricsConfigError(f"--metrics-interval must be a positive number of seconds (got {self.interval})")
        if not self.retention > 0:
            raise MetricsConfigError("the embedded store's retention must be positive")
        if self.influxdb_url and self.influxdb_v2_url:
            raise MetricsConfigError("--influxdb-url (v1 API) and --influxdb-v2-url (v2 API) exclude each other; "
                                     "give one of them")
        if self.influxdb_url and not self.influxdb_url.startswith(("http://", "https://")):
            raise MetricsConfigError(f"--influxdb-url must start with http:// or https:// (got '{self.influxdb_url}')")
        if self.influxdb_v2_url:
            if not self.influxdb_v2_url.startswith(("http://", "https://")):
                raise MetricsConfigError(
                    f"--influxdb-v2-url must start with http:// or https:// (got '{self.influxdb_v2_url}')")
            missing = [flag for flag, value in (("--influxdb-token", self.influxdb_v2_token),
                                                ("--influxdb-org", self.influxdb_v2_org),
                                                ("--influxdb-bucket", self.influxdb_v2_bucket)) if not value]
            if missing:
                raise MetricsConfigError(f"--influxdb-v2-url needs {', '.join(missing)}")
        elif any((self.influxdb_v2_token, self.influxdb_v2_org, self.influxdb_v2_bucket)):
            raise MetricsConfigError("--influxdb-token/--influxdb-org/--influxdb-bucket need --influxdb-v2-url")
        if not self.influxdb_url and any((self.influxdb_database, self.influxdb_user, self.influxdb_password)):
            raise MetricsConfigError("--influxdb-database/--influxdb-user/--influxdb-password need --influxdb-url")
