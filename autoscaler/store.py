"""Policies registered over the REST API, persisted in one small JSON file.

``<dir>/policies.json`` holds ``{"version": 1, "policies": [<policy JSON>...]}``. Every change
rewrites it atomically (temp file, fsync, rename), so a crash leaves the old or the new file,
never half of one. A file that cannot be read is moved aside (``policies.json.corrupt``) and
the store starts empty, loudly: the autoscaler must keep running.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .policy import Policy, PolicyError, policy_from_json

log = logging.getLogger(__name__)


class PolicyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "policies.json"
        self._policies: dict[str, Policy] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            for item in data["policies"]:
                policy = policy_from_json({k: v for k, v in item.items() if k not in ("source", "mode")})
                self._policies[policy.app_id] = policy
        except (OSError, ValueError, KeyError, TypeError, PolicyError) as exc:
            aside = self.path.with_suffix(".json.corrupt")
            log.error("cannot read autoscaler policies from %s (%s); moved to %s, starting empty",
                      self.path, exc, aside)
            self._policies.clear()
            try:
                os.replace(self.path, aside)
            except OSError:
                pass

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "policies": [p.to_json() for _, p in sorted(self._policies.items())]}
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as fh:
            json.dump(body, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def all(self) -> dict[str, Policy]:
        return dict(self._policies)

    def get(self, app_id: str) -> Policy | None:
        return self._policies.get(app_id)

    def put(self, policy: Policy) -> bool:
        """Store (create or replace); True when it was created."""
        created = policy.app_id not in self._policies
        self._policies[policy.app_id] = policy
        self._save()
        return created

    def delete(self, app_id: str) -> Policy | None:
        policy = self._policies.pop(app_id, None)
        if policy is not None:
            self._save()
        return policy
