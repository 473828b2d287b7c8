"""``crystalspace mlff``: reference data, ingestion, training and evaluation of force fields."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crystalspace.cli.options import ConfigOpt, SetOpt, overrides
from crystalspace.errors import user_errors

app = typer.Typer(
    help="Machine-learning force fields: reference data, training, evaluation.", no_args_is_help=True
)


def _config(config: Path | None, sets: list[str] | None, **values: object) -> object:
    from crystalspace.mlff.config import make_mlff_config

    return make_mlff_config(config, overrides(sets, **values))


def _check_device(device: str) -> None:
    """Refuse a torch device string that is malformed or names CUDA on a machine without it."""
    import torch

    from crystalspace.config import ConfigError

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device!r}: no CUDA GPU on this machine")


@app.command("reference")
@user_errors
def reference(
    structures: Annotated[
        list[Path], typer.Argument(help="structure files (CIF, POSCAR, ...); name = file stem")
    ],
    out: Annotated[Path, typer.Option("--out", help="output directory (one <material>.parquet each)")],
    temperatures: Annotated[str, typer.Option("--temperatures", help="K, comma-separated")] = "800,1000,1200",
    runs: Annotated[int, typer.Option("--runs", min=1, help="independent runs per temperature")] = 1,
    steps: Annotated[int, typer.Option("--steps", min=1, help="MD steps per run (2 fs)")] = 500,
    interval: Annotated[int, typer.Option("--interval", min=1, help="record every N steps")] = 10,
    equilibration: Annotated[int, typer.Option("--equilibration", min=0, help="steps before recording")] = 0,
    teacher: Annotated[
        str, typer.Option("--teacher", help="labelling potential: chgnet | sevennet | a registered provider")
    ] = "chgnet",
) -> None:
    """Reference MD with a teacher potential (CHGNet by default; Ray tasks, offline) for any
    structures → structure-row Parquet, the teacher recorded in each file."""
    from crystalspace.config import ConfigError
    from crystalspace.md.reference import generate_reference, load_structures
    from crystalspace.potentials import check_provider

    try:
        temps = [float(t) for t in temperatures.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--temperatures expects numbers, got {temperatures!r}") from None
    if not temps or not all(0 < t < float("inf") for t in temps):
        raise ConfigError(f"--temperatures expects temperatures > 0 K, got {temperatures!r}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if equilibration > steps:
        raise ConfigError(f"--equilibration ({equilibration}) exceeds --steps ({steps}): no frame to record")
    check_provider(teacher)
    paths = generate_reference(
        load_structures(structures), temps, out, runs, steps, interval, equilibration, teacher=teacher
    )
    for name, path in paths.items():
        print(f"{name}: {path} (teacher {teacher})")


@app.command("ingest")
@user_errors
def ingest(
    files: Annotated[list[Path], typer.Argument(help="vasprun.xml / OUTCAR / XDATCAR / extxyz files")],
    out: Annotated[Path, typer.Option("--out", help="output Parquet file")],
    material: Annotated[str | None, typer.Option("--material", help="material column value")] = None,
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="require energy and forces")] = True,
) -> None:
    """Read AIMD output into structure rows (one Parquet file)."""
    from crystalspace.config import ConfigError
    from crystalspace.mlff.ingest import ingest as run

    if out.is_dir() or not out.name:
        raise ConfigError(f"--out {out}: expected a Parquet file name, not a directory")
    n = run(files, out, material, require_labels=labels)
    print(f"ingested {n} frames -> {out}")


@app.command("train")
@user_errors
def train(
    config: ConfigOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", help="architecture (`crystalspace mlff models` lists them)")
    ] = None,
    sets: SetOpt = None,
) -> None:
    """Train one model on Ray Train and save the best one to the registry."""
    from crystalspace.mlff.train import train_model

    cfg = _config(config, sets, model=model)
    result = train_model(cfg)  # type: ignore[arg-type]
    m = result.metrics
    print(
        f"saved {result.entry}  (best epoch {m['best_epoch']}: val force MAE {m['val_force_mae']:.4f} eV/Å, "
        f"R² {m['val_force_r2']:.3f}, energy MAE {1000 * m['val_energy_mae']:.2f} meV/atom)"
    )
    print(f"learning curve: {result.curve}")


@app.command("evaluate")
@user_errors
def evaluate(
    models: Annotated[list[str], typer.Argument(help="registry entries (paths or names under --registry)")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", help="directory for the table and parity plots")] = Path(
        "runs/mlff/evaluation"
    ),
    frames: Annotated[
        int | None, typer.Option("--frames", min=1, help="unseen test frames per material")
    ] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
) -> None:
    """Direct-prediction table (energy/force MAE, R²) per model × material, and force parity plots."""
    from crystalspace.config import ConfigError
    from crystalspace.mlff.evaluate import evaluate_models, format_table

    _check_device(device)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    cfg = _config(config, sets)
    results = evaluate_models(
        list(models),
        cfg.data,  # type: ignore[attr-defined]
        list(cfg.test_materials),  # type: ignore[attr-defined]
        out,
        n_test=frames or cfg.test_frames,  # type: ignore[attr-defined]
        device=device,
        registry=cfg.registry,  # type: ignore[attr-defined]
    )
    print(format_table(results))
    print(f"written: {out}/direct_prediction.csv, parity_<material>.png")


@app.command("tune")
@user_errors
def tune(
    config: Annotated[
        Path | None, typer.Option("--config", help="sweep YAML (pipelines/configs/mlff_tune_*.yaml)")
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="MLFF override for every trial, key=value")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="results directory")] = None,
    name: Annotated[str | None, typer.Option("--name", help="experiment name (resume uses it)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted sweep")] = False,
    stop_after: Annotated[
        int | None, typer.Option("--stop-after", min=1, help="end gracefully after N more trials")
    ] = None,
    stability: Annotated[
        bool | None, typer.Option("--stability/--no-stability", help="add the short-MD RDF score")
    ] = None,
) -> None:
    """Ray Tune sweep over architecture × hyper-parameters with ASHA; resumable; table + plot."""
    from crystalspace.config import ConfigError
    from crystalspace.tune import count_trials, load_spec, print_table, run_sweep, saved_spec

    sweep_overrides = overrides(sets)
    out_dir = str(out) if out else None
    if resume:
        if sweep_overrides or stability is not None:
            raise ConfigError("--resume continues the sweep as it was started: no --set/--stability")
        base = load_spec(config, out=out_dir, name=name) if config else None
        spec = saved_spec(
            out_dir or (base.out if base else "runs/mlff_tune"), name or (base.name if base else "mlff_tune")
        )
    else:
        spec = load_spec(config, sweep_overrides, out=out_dir, name=name)
        if stability is not None:
            spec.stability.enabled = stability
    result = run_sweep(spec, resume=resume, stop_after=stop_after)
    print_table(result.table, sorted(spec.space))
    for label, path in result.files.items():
        print(f"{label}: {path}")
    finished = int((~result.table.status.isin(["pending", "unfinished"])).sum())
    if not result.complete:
        print(
            f"sweep interrupted: {finished} of {count_trials(spec)} trials finished; continue with "
            f"`crystalspace mlff tune --resume --out {spec.out} --name {spec.name}`"
        )
    elif len(result.best):
        top = result.table.iloc[0]
        print(f"best: trial {top.trial} ({top.status}), objective {top.objective:.4g}; "
              f"train it fully with `crystalspace mlff train --config {result.files['best_config']}`")  # fmt: skip


def _register_report() -> None:
    """``mlff report`` is ``md report``: the study's tables judge the force fields by their MD."""
    from crystalspace.cli.md import report_cmd

    app.command("report", help=report_cmd.__doc__)(report_cmd)


_register_report()


@app.command("models")
@user_errors
def models() -> None:
    """The force-field zoo: each architecture, how it gets forces, and its size at the study's width."""
    from rich.table import Table

    from crystalspace.cli.options import console
    from crystalspace.mlff.models import MODELS, study_sizes

    sizes = {row["model"]: row for row in study_sizes()}
    table = Table(title="force fields (parameters at the MLFF study's width, cutoff 6 Å)")
    for col in ("model", "symmetry", "forces", "parameters", "study (Table 1)", "ratio"):
        table.add_column(
            col, justify="right" if col in {"parameters", "study (Table 1)", "ratio"} else "left"
        )
    for arch, cls in MODELS.items():
        row = sizes.get(arch)
        forces = "−∂E/∂r" if cls.conservative else "direct"
        if row is None:
            table.add_row(arch, cls.symmetry, forces, "", "not in the study", "")
        else:
            table.add_row(
                arch,
                cls.symmetry,
                forces,
                f"{row['params'] / 1e6:.2f} M",
                f"{row['study_params'] / 1e6:.2f} M",
                f"{row['ratio']:.2f}",
            )
    console.print(table)
