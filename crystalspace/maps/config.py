"""Maps configuration: which lakes and arities, embeddings, projections, sample size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crystalspace.config import make_config, path_field
from crystalspace.space.config import parse_arities


class MapsConfig(BaseModel):
    """Maps of chemical space: which lakes and arities, embeddings, projections, sample size."""

    model_config = ConfigDict(extra="forbid")

    lakes: list[str] = path_field(
        default_factory=lambda: ["lake"], description="lakes; first with an arity wins"
    )
    out: str = path_field(default="maps", description="maps folder")
    arities: tuple[int, ...] = Field(default=(2, 3), description="element counts, 2..4")
    embeddings: list[str] = Field(
        default_factory=lambda: ["magpie", "mat2vec", "megnet16", "oliynyk", "skipatom", "random"]
    )
    methods: list[str] = Field(default_factory=lambda: ["pca", "tsne", "umap"])
    per_category: int = Field(default=3000, ge=1, description="compositions per category and arity")
    seed: int = 0
    figures: bool = True
    explorer: bool = True

    @field_validator("arities", mode="before")
    @classmethod
    def _read_arities(cls, v: Any) -> Any:
        return parse_arities(str(v)) if isinstance(v, str | int) else v


def make_maps_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> MapsConfig:
    """A `MapsConfig` from an optional YAML file plus overrides."""
    return make_config(MapsConfig, file, overrides)
