"""`python -m haproxy_bridge --master URL ...` (the same as `pacer haproxy-bridge`)."""

import sys

from .cli import main

sys.exit(main())
