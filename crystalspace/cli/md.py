"""``crystalspace md``: run replicas through Ray actors, analyse trajectories, build the MLFF-MD report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from crystalspace.errors import UserError, user_errors

app = typer.Typer(help="Batched MLFF molecular dynamics, diffusion/stability analysis and report.",
                  no_args_is_help=True)  # fmt: skip


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"{what}: expected comma-separated numbers, got {text!r}")
    return values


def _positive(value: float, what: str, zero: bool = False) -> None:
    """Refuse a non-positive (or, with ``zero``, a negative) ``value`` of option ``what``."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise UserError(f"{what} must be {'>= 0' if zero else '> 0'}, got {value:g}")


def _out_dir(out: Path, what: str = "--out") -> None:
    """Refuse an output directory that exists as something else (checked before any work)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} {out}: exists and is not a directory")


@app.command("run")
@user_errors
def run_cmd(
    structure: Annotated[
        list[str], typer.Option("--structure", help="FILE or NAME=FILE (CIF/POSCAR/...), repeatable")
    ],
    out: Annotated[Path, typer.Option("--out", help="trajectory directory")],
    temperatures: Annotated[
        str, typer.Option("--temperatures", help="K, e.g. 800,1000,1200")
    ] = "800,1000,1200",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="runs per material and T")] = 2,
    provider: Annotated[
        str, typer.Option("--provider", help="pair | chgnet | registered name | model path")
    ] = "pair",
    ramp_ps: Annotated[float, typer.Option("--ramp-ps")] = 5.0,
    production_ps: Annotated[float, typer.Option("--production-ps")] = 10.0,
    thermostat: Annotated[str, typer.Option("--thermostat", help="nhc | langevin | nve")] = "nhc",
    actors: Annotated[int, typer.Option("--actors", min=1, help="actors per material")] = 2,
    num_gpus: Annotated[float, typer.Option("--gpus-per-actor", min=0.0)] = 0.0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help="MD steps")] = 500,
) -> None:
    """Run the study's protocol (MB at 100 K, ramp, NVT production) for every material × T × repeat."""
    from crystalspace.atoms.io import read_structures
    from crystalspace.md.actors import run_md
    from crystalspace.md.replicas import MDProtocol
    from crystalspace.potentials import check_provider

    # every input is checked here, before Ray starts and before --out is created
    if thermostat not in ("nhc", "langevin", "nve"):
        raise UserError(f"unknown thermostat {thermostat!r} (nhc, langevin, nve)")
    temps = _floats(temperatures, "--temperatures")
    if min(temps) <= 0:
        raise UserError(f"--temperatures must be > 0 K, got {temperatures!r}")
    _positive(ramp_ps, "--ramp-ps")
    _positive(production_ps, "--production-ps")
    _out_dir(out)
    check_provider(provider)
    structures = {}
    for item in structure:
        name, _, path = item.rpartition("=")
        if not path.strip():
            raise UserError(f"--structure {item!r}: expected FILE or NAME=FILE")
        atoms = read_structures(path, index=0)[0]
        name = name or Path(path).stem.split("_")[0]
        if name in structures:
            raise UserError(f"--structure: material {name!r} given twice (name them NAME=FILE)")
        structures[name] = atoms
    protocol = MDProtocol(ramp_ps=ramp_ps, production_ps=production_ps, thermostat=thermostat,  # type: ignore[arg-type]
                          checkpoint_every=checkpoint_every)  # fmt: skip
    summary = run_md(structures, temps, repeats, out, protocol, provider, actors_per_material=actors,
                     num_gpus=num_gpus)  # fmt: skip
    stopped = [r for r in summary if r["status"] != "ok"]
    info = json.loads((out / "summary.json").read_text())
    print(
        f"{len(summary)} replicas, {len(stopped)} stopped; {info['ns_per_day']:.3g} ns/day aggregate; {out}"
    )
    for r in stopped:
        print(f"  replica {r['replica']} {r['material']} {r['temperature_K']:g} K: {r['reason']} at step "
              f"{r['stopped_at_step']}")  # fmt: skip


@app.command("analyze")
@user_errors
def analyze_cmd(
    trajectories: Annotated[list[Path], typer.Argument(help="Parquet files or MD output directories")],
    out: Annotated[Path, typer.Option("--out")] = Path("md-analysis"),
    discard_ps: Annotated[float, typer.Option("--discard-ps", help="production ps to drop first")] = 0.0,
    fit_ps: Annotated[str, typer.Option("--fit-ps", help="MSD fit window, ps")] = "1,5",
    t_room: Annotated[float, typer.Option("--t-room")] = 300.0,
) -> None:
    """Li diffusivity per run, mean ± sd per T, Arrhenius fit and σ extrapolated to room temperature."""
    import pandas as pd

    from crystalspace.md import analysis as an

    window = _floats(fit_ps, "--fit-ps")
    if len(window) != 2 or not 0 <= window[0] < window[1]:
        raise UserError(f"--fit-ps needs two numbers 0 <= start < end, e.g. 1,5; got {fit_ps!r}")
    _positive(discard_ps, "--discard-ps", zero=True)
    _positive(t_room, "--t-room")
    _out_dir(out)
    frames = an.load_trajectories(trajectories)
    table = an.diffusion_table(frames, discard_ps, (window[0], window[1]))
    an.warn_all(table)
    summary = an.summarize_diffusion(table)
    fits = []
    for mat in summary.material.unique():
        try:
            fits.append(an.arrhenius_fit(summary, mat, t_room).as_row())
        except an.AnalysisError as exc:
            print(f"warning: {exc}")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "diffusion.csv", index=False)
    summary.to_csv(out / "diffusion_summary.csv", index=False)
    pd.DataFrame(fits).to_csv(out / "arrhenius.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        cols = ["material", "temperature_K", "T_mean_K", "D_mean", "D_sd", "n_runs"]
        shown = summary[cols].assign(T_mean_K=summary.T_mean_K.round().astype(int))
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        for f in fits:
            print(
                f"{f['material']}: Ea = {f['ea_eV']:.3f} ± {f['ea_err_eV']:.3f} eV, "
                f"-log10 σ({t_room:g} K) = {f['neg_log10_sigma_room']:.2f} ± {f['neg_log10_sigma_room_err']:.2f}"
            )
    print(f"wrote {out}")


@app.command("report")
@user_errors
def report_cmd(
    reference: Annotated[list[Path], typer.Option("--reference", help="reference trajectories (repeatable)")],
    model: Annotated[list[str] | None, typer.Option("--model", help="NAME=PATH[,PATH] (repeatable)")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("md-report"),
    split_seeds: Annotated[bool, typer.Option("--split-seeds", help="reference seeds as models")] = False,
    discard_ps: Annotated[float, typer.Option("--discard-ps")] = 0.0,
    t_room: Annotated[float, typer.Option("--t-room")] = 300.0,
    rdf_frames: Annotated[int, typer.Option("--rdf-frames", min=1)] = 50,
    force_provider: Annotated[
        list[str] | None,
        typer.Option(
            "--force-provider", help="NAME=PROVIDER: force MAE of model NAME on the reference frames"
        ),
    ] = None,
) -> None:
    """The study's tables (models, −log10 σ(300 K) vs reference, force vs RDF MAE) and figures."""
    from crystalspace.md import analysis as an
    from crystalspace.md import report as rp
    from crystalspace.md.reference import reference_teacher

    _positive(discard_ps, "--discard-ps", zero=True)
    _positive(t_room, "--t-room")
    _out_dir(out)
    ref = an.load_trajectories(reference)
    teacher = reference_teacher(reference)
    if teacher:
        print(f"reference labelled by teacher {teacher}")
    models: list[rp.ModelRun] = []
    rdf_ref = None
    if split_seeds:
        ref, models = rp.seed_split(ref, teacher or "chgnet")  # unrecorded: files made before teachers
        rdf_ref = ref[ref.run == ref.run.min()]
    for item in model or []:
        name, sep, paths = item.partition("=")
        files = [p.strip() for p in paths.split(",")]
        if not sep or not name.strip() or not all(files):
            raise UserError(f"--model {item!r}: expected NAME=PATH[,PATH]")
        models.append(rp.load_model(name.strip(), [Path(p) for p in files]))
    if not models:
        raise UserError("nothing to compare: give --model NAME=PATH or --split-seeds")
    from crystalspace.potentials import get_provider

    by_name = {m.name: m for m in models}
    for item in force_provider or []:
        name, sep, prov = item.partition("=")
        if not sep or name not in by_name:
            raise UserError(
                f"--force-provider {item!r}: expected NAME=PROVIDER with NAME one of {sorted(by_name)}"
            )
        by_name[name].info["force_mae"] = an.force_mae(get_provider(prov), ref)
    tables = rp.build_report(
        ref, models, out, discard_ps, t_room=t_room, rdf_frames=rdf_frames, rdf_reference=rdf_ref
    )
    print((out / "conductivity.md").read_text())
    print((out / "errors.md").read_text())
    print(f"wrote {len(tables)} tables and figures to {out}")
