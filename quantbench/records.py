"""Result records: one JSON file per job, holding metric values with units in their names, the
full parameters that produced them and their provenance. The report reads nothing else."""
from __future__ import annotations

from pathlib import Path

from quantbench.atomic import read_json, write_json
from quantbench.provenance import now, provenance

SCHEMA_VERSION = 1


class Recorder:
    """Collects one job's record and writes it atomically at the end."""

    def __init__(self, stage: str, subject: str, params: dict, device: str, seed: int):
        self.started = now()
        self.record = {"schema_version": SCHEMA_VERSION, "stage": stage, "subject": subject,
                       "params": params, "metrics": {}, "status": "ok"}
        self.device, self.seed = device, seed

    def write(self, path: str | Path) -> dict:
        self.record["provenance"] = provenance(self.device, self.seed, self.record["params"], self.started)
        write_json(path, self.record)
        return self.record


def load_records(paths) -> list[dict]:
    return [read_json(p) for p in paths]
