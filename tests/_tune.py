"""The CI-size sweep spec both tune test modules start from."""

from __future__ import annotations

from pathlib import Path

import yaml
from _paths import DATA

SMALL = "pipelines/configs/mlff_tune_small.yaml"
SUBSET = str(DATA / "mlff_subset")


def spec_file(tmp_path: Path, **fields: object) -> Path:
    """The small sweep with ``fields`` changed, written elsewhere (its paths made absolute)."""
    data = yaml.safe_load(Path(SMALL).read_text())
    data["base"] = str(Path(SMALL).resolve().parent / data["base"])
    data["overrides"]["data"] = SUBSET
    data.update(fields)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
