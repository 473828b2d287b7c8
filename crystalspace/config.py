"""Typed configuration, one pydantic model per pipeline; YAML defaults in pipelines/configs/."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crystalspace.chem.elements import MAX_Z, element_table, parse_elements
from crystalspace.chem.oxidation import DEFAULT_SET, NAMED_SETS
from crystalspace.errors import UserError
from crystalspace.runtime import shared_data
from crystalspace.space.combinatorics import MAX_ARITY, MAX_STOICH_LIMIT, MIN_ARITY
from crystalspace.space.known import DEFAULT_REFERENCE

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """Invalid configuration given by the user."""


def path_field(**kwargs: Any) -> Any:
    """A pydantic field holding a path (or a list of them): relative in a config file means
    relative to the file. ``names``: values that are names, not paths (``mp``, ``smact14``)."""
    names = kwargs.pop("names", ())
    return Field(json_schema_extra={"path": True, "names": list(names)}, **kwargs)


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


def make_space_config(file: Path | None = None, overrides: dict[str, Any] | None = None) -> SpaceConfig:
    """Build a `SpaceConfig` from an optional YAML file plus overrides (CLI values).

    ``elements`` may be given as symbols (``"Li,Zn,Sn,O"`` or a list of symbols).
    """
    data = read_config_file(file, SpaceConfig)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    elements = data.get("elements")
    if isinstance(elements, str):
        data["elements"] = parse_elements(elements)
    elif isinstance(elements, list) and elements and isinstance(elements[0], str):
        data["elements"] = parse_elements(",".join(elements))
    if isinstance(data.get("arities"), str | int):
        data["arities"] = parse_arities(str(data["arities"]))
    return _validated(SpaceConfig, data)


def symbols_of(zs: tuple[int, ...]) -> str:
    """Comma-separated element symbols for atomic numbers."""
    symbols = element_table().symbols
    return ",".join(symbols[z] for z in zs)


class MLFFConfig(BaseModel):
    """Force-field training: data split, model, optimiser, Ray Train scaling (mlff pipeline)."""

    model_config = ConfigDict(extra="forbid")

    data: str = path_field(
        default_factory=lambda: shared_data("mlff_reference"), description="reference Parquet dir"
    )
    train_material: str = Field(default="LGPS", description="material the model is trained on")
    test_materials: tuple[str, ...] = Field(default=("LGPS", "Li3PS4", "Li4GeS4"))
    train_per_temperature: int = Field(default=6000, ge=1, description="training frames per temperature")
    val_per_temperature: int = Field(default=500, ge=1, description="validation frames per temperature")
    test_frames: int = Field(default=2000, ge=1, description="unseen test frames per material")
    phase: str | None = Field(default="production", description="MD phase used (None: all frames)")
    model: str = "schnet"
    cutoff: float = Field(default=6.0, gt=0, description="neighbour cutoff, Å")
    max_neighbors: int = Field(default=500, ge=1)
    hidden: int = Field(default=128, ge=1, description="embedding size")
    layers: int = Field(default=3, ge=1, description="interaction layers")
    hparams: dict[str, Any] = Field(default_factory=dict, description="extra model hyper-parameters")
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=8, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    energy_weight: float = Field(default=1.0, ge=0, description="weight of the per-atom energy MSE")
    force_weight: float = Field(default=1000.0, ge=0, description="weight of the force MSE (study: 1:1000)")
    plateau_patience: int = Field(default=5, ge=1)
    plateau_factor: float = Field(default=0.5, gt=0, lt=1)
    ema_decay: float | None = Field(default=None, description="EMA of the weights (e.g. 0.999); None: off")
    time_budget_s: float | None = Field(default=None, description="wall-clock budget per run (study: 10 h)")
    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(default=1, ge=0)
    seed: int = 0
    out: str = path_field(default="runs/mlff", description="run directory (checkpoints, figures)")
    registry: str = path_field(default="runs/registry", description="saved-model registry root")
    dataset_name: str = Field(default="lgps", description="dataset part of the registry name")

    def model_hparams(self) -> dict[str, Any]:
        """Hyper-parameters passed to the model constructor."""
        return {"cutoff": self.cutoff, "hidden": self.hidden, "layers": self.layers, **self.hparams}


def make_mlff_config(file: Path | None = None, overrides: dict[str, Any] | None = None) -> MLFFConfig:
    """An `MLFFConfig` from an optional YAML file plus overrides (``key=value`` strings allowed)."""
    data = read_config_file(file, MLFFConfig)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = parse_value(key, value) if isinstance(value, str) else value
    return _validated(MLFFConfig, data)


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
    energy_model: str = Field(default="chgnet", description="force field for energies")
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
    if file is not None and isinstance(data.get("train"), dict) and data["train"].get("autoencoders_from"):
        base = Path(file).resolve().parent
        data["train"]["autoencoders_from"] = _join(data["train"]["autoencoders_from"], base, set())
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, str):
            value = parse_value(key, value)
        if key.startswith("train."):
            data.setdefault("train", {})[key.removeprefix("train.")] = value
        else:
            data[key] = value
    return _validated(GenConfig, data)


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


def make_maps_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> MapsConfig:
    """A `MapsConfig` from an optional YAML file plus overrides."""
    data = read_config_file(file, MapsConfig)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if isinstance(data.get("arities"), str | int):
        data["arities"] = parse_arities(str(data["arities"]))
    return _validated(MapsConfig, data)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-5`` as a number (YAML 1.2; PyYAML's 1.1 needs ``1.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+.0123456789")
)


def load_yaml(text: str) -> Any:
    """A YAML value (config files and ``--set key=value`` values alike)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def read_config_file(file: str | Path | None, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The mapping in a YAML config file ({} without a file), or one clear :class:`ConfigError`.

    Relative paths in the file (the ``model``'s fields marked ``path``) resolve against the
    file's folder, so a config file means the same from any working directory.
    """
    if file is None:
        return {}
    try:
        text = Path(file).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {file} is not a YAML text file (not UTF-8)") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {file} is not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config {file} must be a mapping of settings (key: value), not a {type(data).__name__}"
        )
    return resolve_paths(data, model, Path(file).resolve().parent) if model else data


def parse_value(key: str, text: str) -> Any:
    """A ``--set key=value`` value read as YAML (``1e-5``, ``[1, 2]``, ``{a: 1}``), or one clear error."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: {text!r} is not a valid value: {_yaml_problem(exc)}") from None


def parse_sets(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["key=value", …]`` -> ``{key: value}`` (values still text), one error for an item without ``=``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(problem)


def resolve_paths(data: dict[str, Any], model: type[BaseModel], base: Path) -> dict[str, Any]:
    """``data`` with the relative paths of ``model``'s path fields joined to ``base``."""
    out = dict(data)
    for key, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if key in out and extra.get("path"):
            names = {str(n) for n in extra.get("names") or ()}  # type: ignore[union-attr]
            value = out[key]
            out[key] = (
                [_join(v, base, names) for v in value]
                if isinstance(value, list)
                else _join(value, base, names)
            )
    return out


def relative_to_file(data: dict[str, Any], keys: tuple[str, ...], file: str | Path) -> dict[str, Any]:
    """``data`` with the relative paths under ``keys`` joined to ``file``'s folder (for configs
    that are not pydantic models)."""
    base = Path(file).resolve().parent
    return {k: _join(v, base, set()) if k in keys else v for k, v in data.items()}


def _join(value: Any, base: Path, names: set[str]) -> Any:
    if not isinstance(value, str) or value in names or "://" in value or Path(value).is_absolute():
        return value
    return str(base / value)


def _validated(model: type[M], data: dict[str, Any]) -> M:
    """``model(**data)``, its first validation error as one :class:`ConfigError` line."""
    try:
        return model(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
