"""Command-line flags of the metrics layer, shared by `pacer serve` and `pacer autoscaler`.

Secrets may come from the environment instead of the command line (where `ps` shows them):
``PACER_INFLUXDB_PASSWORD`` and ``PACER_INFLUXDB_TOKEN``.
"""

from __future__ import annotations

import argparse
import os

from .options import DEFAULT_DATABASE, MetricsOptions


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got '{value}')") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (got '{value}')")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metrics")
    group.add_argument("--metrics-interval", type=_seconds, default=10.0, metavar="SECONDS",
                       help="seconds between task usage samples (default 10)")
    group.add_argument("--influxdb-url", metavar="URL",
                       help="InfluxDB v1 HTTP API (/write, /query), e.g. http://127.0.0.1:8086; "
                            "default: the embedded in-memory store")
    group.add_argument("--influxdb-database", metavar="DB",
                       help=f"InfluxDB database (default {DEFAULT_DATABASE}, created if missing)")
    group.add_argument("--influxdb-user", metavar="USER")
    group.add_argument("--influxdb-password", metavar="PASSWORD", help="(default $PACER_INFLUXDB_PASSWORD)")
    group.add_argument("--influxdb-v2-url", metavar="URL", help="InfluxDB 2.x/3.x API through influxdb-client")
    group.add_argument("--influxdb-token", metavar="TOKEN", help="v2 API token (default $PACER_INFLUXDB_TOKEN)")
    group.add_argument("--influxdb-org", metavar="ORG", help="v2 organization")
    group.add_argument("--influxdb-bucket", metavar="BUCKET", help="v2 bucket")


def options_from_args(args: argparse.Namespace) -> MetricsOptions:
    """Build and validate the options; raises MetricsConfigError naming the flag at fault."""
    v2 = args.influxdb_v2_url
    options = MetricsOptions(
        interval=args.metrics_interval,
        influxdb_url=args.influxdb_url,
        influxdb_database=args.influxdb_database,
        influxdb_user=args.influxdb_user,
        influxdb_password=args.influxdb_password or (
            os.environ.get("PACER_INFLUXDB_PASSWORD") if args.influxdb_url and args.influxdb_user else None),
        influxdb_v2_url=v2,
        influxdb_v2_token=args.influxdb_token or (os.environ.get("PACER_INFLUXDB_TOKEN") if v2 else None),
        influxdb_v2_org=args.influxdb_org,
        influxdb_v2_bucket=args.influxdb_bucket,
    )
    options.validate()
    return options
