"""The chemical-space engine's configuration: which compositions, which filters, which reference set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crystalspace.chem.elements import MAX_Z, element_table, parse_elements
from crystalspace.chem.oxidation import DEFAULT_SET, NAMED_SETS
from crystalspace.config import ConfigError, make_config, path_field
from crystalspace.space.combinatorics import MAX_ARITY, MAX_STOICH_LIMIT, MIN_ARITY
from crystalspace.space.known import DEFAULT_REFERENCE

RowsMode = Literal["auto", "all", "allowed"]


class SpaceConfig(BaseModel):
    """The chemical-space engine: which compositions, which filters, which reference set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arities: tuple[int, ...] = Field(default=(2, 3), description="element counts, 2..4")
    elements: tuple[int, ...] | None = Field(
        default=None, description="element pool as atomic numbers (None: all of Z 1..103)"
    )
    limit: int = Field(default=8, description=f"largest stoichiometric factor, 1..{MAX_STOICH_LIMIT}")
    ox_set: str = path_field(
        default=DEFAULT_SET, description="oxidation-state set name or file", names=NAMED_SETS
    )
    reference: str = path_field(
        default=DEFAULT_REFERENCE, description="known-materials set or file", names=[DEFAULT_REFERENCE]
    )
    rows: RowsMode = Field(
        default="auto",
        description="rows written: all compositions, or only allowed+known ones (unlikely rows "
        "are then counted, not written); auto = all, except allowed for the full quaternary space",
    )
    shard_rows: int = Field(default=2_000_000, description="target compositions per shard", ge=1000)

    @field_validator("arities", mode="before")
    @classmethod
    def _read_arities(cls, v: Any) -> Any:
        return parse_arities(str(v)) if isinstance(v, str | int) else v

    @field_validator("elements", mode="before")
    @classmethod
    def _read_elements(cls, v: Any) -> Any:
        """Symbols (``"Li,Zn,O"`` or a list of them) -> atomic numbers."""
        if isinstance(v, str):
            return parse_elements(v)
        if isinstance(v, list | tuple) and v and all(isinstance(x, str) for x in v):
            return parse_elements(",".join(v))
        return v

    @field_validator("arities")
    @classmethod
    def _check_arities(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [a for a in v if not MIN_ARITY <= a <= MAX_ARITY]
        if bad or not v:
            raise ValueError(f"arity must be in {MIN_ARITY}..{MAX_ARITY}, got {list(v)}")
        return tuple(sorted(set(v)))

    @field_validator("limit")
    @classmethod
    def _check_limit(cls, v: int) -> int:
        if not 1 <= v <= MAX_STOICH_LIMIT:
            raise ValueError(f"stoichiometry limit must be in 1..{MAX_STOICH_LIMIT}, got {v}")
        return v

    @field_validator("elements")
    @classmethod
    def _check_elements(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return None
        if any(not 1 <= z <= MAX_Z for z in v):
            raise ValueError(f"atomic numbers must be in 1..{MAX_Z}")
        return tuple(sorted(set(v)))

    @property
    def pool(self) -> tuple[int, ...]:
        """The element pool (atomic numbers, ascending)."""
        return self.elements or tuple(range(1, MAX_Z + 1))

    def rows_for(self, arity: int) -> Literal["all", "allowed"]:
        """Effective rows mode for one arity."""
        if self.rows != "auto":
            return self.rows
        return "allowed" if arity == 4 and len(self.pool) == MAX_Z else "all"

    def identity(self) -> dict[str, Any]:
        """What makes two lakes compatible (arities may be added to a lake later)."""
        return self.model_dump(exclude={"arities", "shard_rows"})

    def config_hash(self, ox_tag: str, reference_tag: str) -> str:
        """Hash of the identity plus the content hashes of the oxidation and reference sets."""
        blob = json.dumps({**self.identity(), "ox": ox_tag, "ref": reference_tag}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_arities(text: str) -> tuple[int, ...]:
    """``"2,3"`` -> ``(2, 3)`` with a clear error for junk."""
    try:
        return tuple(int(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise ConfigError(f"arity must be a comma-separated list of integers, got {text!r}") from None


def make_space_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SpaceConfig:
    """A `SpaceConfig` from an optional YAML file plus overrides (CLI values, ``--set`` text).

    ``elements`` may be given as symbols (``"Li,Zn,Sn,O"`` or a list of symbols), ``arities`` as
    ``"2,3"``.
    """
    return make_config(SpaceConfig, file, overrides)


def symbols_of(zs: tuple[int, ...]) -> str:
    """Comma-separated element symbols for atomic numbers."""
    symbols = element_table().symbols
    return ",".join(symbols[z] for z in zs)
