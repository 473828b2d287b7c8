"""Generative design (iMatGen) configuration: data, images, training, sampling and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crystalspace.config import apply_overrides, path_field, read_config_file, relative_to_file, validated
from crystalspace.runtime import shared_data


class GenConfig(BaseModel):
    """Generative inverse design (iMatGen): data, images, training, sampling and evaluation."""

    model_config = ConfigDict(extra="forbid")

    source: str = path_field(
        default_factory=lambda: shared_data("mp_binary_smact", "mp_binary_docs.jsonl.gz"),
        description="MP binaries (JSON lines)",
    )
    mp_formulas: str = path_field(
        default_factory=lambda: shared_data("mp_id_lists", "mp_ids_union_DERIVED.csv.gz"),
        description="MP composition table (novelty: which V–O formulas MP knows)",
    )
    data_dir: str = path_field(default="gen/data", description="VO dataset folder")
    model_dir: str = path_field(default="gen/model", description="trained model folder")
    out_dir: str = path_field(default="gen/out", description="samples, tables, figures")
    limit: int | None = Field(default=None, ge=1, description="source binaries to use (None: all)")
    energy_limit: int | None = Field(
        default=None, ge=1, description="rows to label with energies (None: all)"
    )
    energy_chunk: int = Field(default=64, ge=1, description="structures per energy task")
    energy_model: str = Field(
        default="chgnet",
        description="force field: a provider name (chgnet, pair) or a saved model's name or path",
    )
    energy_device: str = Field(default="cpu", description="device for relaxations in evaluate (cpu, cuda)")
    max_sites: int = Field(default=20, ge=1)
    max_length: float = Field(default=10.0, gt=0, description="Å")
    cell_grid: int = Field(default=32, description="m (cell image grid)")
    cell_sigma: float = Field(default=2.0, gt=0, description="Å")
    basis_grid: int = Field(default=64, description="n (basis image grid)")
    box: float = Field(default=15.0, gt=0, description="basis box side, Å")
    basis_sigma: float = Field(default=0.5, gt=0, description="Å")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainSettings overrides")
    n_samples: int = Field(default=1000, ge=1)
    method: Literal["slerp", "random"] = "slerp"
    peak_threshold: float = Field(default=0.3, gt=0)
    decode_by_counts: bool = Field(
        default=False,
        description="take each element's atoms as its highest peaks by the atom counts the VAE decodes "
        "(False: every peak above peak_threshold)",
    )
    reconstruct_max: int = Field(default=1000, ge=1, description="rows per split in Table 1")
    relax_max: int = Field(default=20, ge=0, description="new structures relaxed for E_hull")
    relax_steps: int = Field(default=100, ge=1)
    baseline_budget: int = Field(default=300, ge=0, description="force calls per baseline search")
    seed: int = 0


def make_gen_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> GenConfig:
    """A `GenConfig` from an optional YAML file plus ``key=value`` overrides (``train.x=...``)."""
    data = read_config_file(file, GenConfig)
    if file is not None and isinstance(data.get("train"), dict):  # its paths: relative to the file
        data["train"] = relative_to_file(data["train"], ("autoencoders_from",), file)
    return validated(GenConfig, apply_overrides(data, overrides))
