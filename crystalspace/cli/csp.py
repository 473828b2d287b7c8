"""``crystalspace csp train|predict|evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crystalspace.cli.options import ConfigOpt, SetOpt, overrides
from crystalspace.errors import UserError, user_errors
from crystalspace.storage import atomic_path

app = typer.Typer(
    help="Crystal structure prediction from predicted distance matrices (AlphaCrystal-II).",
    no_args_is_help=True,
)
DEFAULT_MODEL = Path.home() / ".crystalspace" / "csp-model"


def _config(path: Path | None, sets: list[str] | None) -> Any:
    from crystalspace.csp.workflow import load_csp_config

    return load_csp_config(path, overrides(sets))


@app.command()
@user_errors
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model_dir: Annotated[
        Path, typer.Option(help="the model folder to write (a registry entry)")
    ] = DEFAULT_MODEL,
) -> None:
    """Build the dataset, train the distance network (Ray Train) and the lattice model."""
    import tempfile

    from crystalspace.csp.workflow import train_pipeline
    from crystalspace.runtime import init_ray

    cfg = _config(config, set_)
    init_ray(num_cpus=max(2, cfg.num_workers))
    with tempfile.TemporaryDirectory() as tmp:
        info = train_pipeline(cfg, model_dir, Path(tmp))
    info.pop("test_formulas")
    info.pop("config")
    print(json.dumps(info, indent=2))
    print(f"model saved to {model_dir}")


@app.command()
@user_errors
def predict(
    formula: str,
    top_k: Annotated[int, typer.Option(min=1, help="candidates to report")] = 10,
    model_dir: Annotated[Path, typer.Option()] = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option(help="directory for CIFs")] = Path("csp_out"),
    runs: Annotated[int, typer.Option(min=1, help="independent GA runs")] = 12,
    relax_steps: Annotated[int, typer.Option(min=0, help="FIRE steps per relaxation")] = 30,
    force_field: Annotated[
        str, typer.Option(help="relaxing force field: chgnet, pair, or a saved model's name or path")
    ] = "chgnet",
    lattice: Annotated[
        str | None, typer.Option(help="user lattice 'a,b,c,alpha,beta,gamma' instead of the predicted one")
    ] = None,
) -> None:
    """Predict ranked structures for FORMULA (its atom counts are the cell's) and write CIFs."""
    from pymatgen.core import Composition, Lattice

    from crystalspace.csp.workflow import default_relaxer, load
    from crystalspace.csp.workflow import predict as run_predict
    from crystalspace.potentials import check_provider

    try:  # checked before the model loads; predict() checks the atom counts against the model
        Composition(formula)
    except Exception as exc:
        raise UserError(f"cannot parse formula {formula!r}: {str(exc).splitlines()[0]}") from None
    check_provider(force_field)
    lat = None
    if lattice:
        try:
            lat = Lattice.from_parameters(*[float(v) for v in lattice.split(",")])
        except Exception:
            raise UserError(f"--lattice needs six numbers a,b,c,alpha,beta,gamma, got {lattice!r}") from None
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    bundle = load(model_dir)
    relaxer = default_relaxer(force_field)
    res = run_predict(bundle, formula, relaxer, top_k, runs, relax_steps=relax_steps, lattice=lat)
    out.mkdir(parents=True, exist_ok=True)
    g = res["lattice"]
    print(
        f"{formula}: predicted lattice a,b,c={tuple(round(float(x), 2) for x in g.abc)} angles={tuple(round(float(x), 1) for x in g.angles)} space group {g.spacegroup}"
    )
    print(f"{'rank':>4} {'E (eV/atom)':>12} {'GA fit':>8} {'spg':>5}  cif")
    for i, c in enumerate(res["candidates"], 1):
        s = c["structure"]
        path = out / f"{s.composition.reduced_formula}_{i:02d}.cif"
        with atomic_path(path) as tmp:
            s.to(filename=str(tmp), fmt="cif")
        print(
            f"{i:>4} {c['energy_per_atom']:>12.4f} {c['ga_fitness']:>8.3f} {s.get_space_group_info(symprec=0.1)[1]:>5}  {path}"
        )


@app.command()
@user_errors
def evaluate(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    model_dir: Annotated[Path, typer.Option()] = DEFAULT_MODEL,
    n: Annotated[int, typer.Option(min=1, help="test formulas")] = 5,
    out: Annotated[Path, typer.Option()] = Path("csp_eval.csv"),
) -> None:
    """Table-3-style evaluation on held-out formulas: CSP vs random search, same relaxation budget."""
    import pandas as pd

    from crystalspace.csp.workflow import default_relaxer, evaluate_formulas, load, load_entries

    cfg = _config(config, set_)
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory (give a CSV file name)")
    bundle = load(model_dir)
    test = set(bundle["info"]["test_formulas"])
    entries = [e for e in load_entries(cfg) if e.formula in test][:n]
    if not entries:
        raise UserError("no held-out test formulas found in the configured data")
    df = pd.DataFrame(evaluate_formulas(bundle, entries, default_relaxer(cfg.force_field), cfg))
    df.to_csv(out, index=False)
    print(df.to_string(index=False))
