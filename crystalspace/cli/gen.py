"""``crystalspace gen``: build the VO dataset, train iMatGen, sample and evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crystalspace.cli.options import AddressOpt, ConfigOpt, NumCpusOpt, SetOpt, overrides
from crystalspace.errors import user_errors

app = typer.Typer(
    help="Generative inverse design with invertible crystal images (iMatGen).", no_args_is_help=True
)


def _config(config: Path | None, sets: list[str] | None, **values: Any) -> Any:
    from crystalspace.gen.config import make_gen_config

    return make_gen_config(config, overrides(sets, **values))


def _ray(address: str | None, num_cpus: int | None) -> None:
    from crystalspace.runtime import init_ray

    init_ray(address, num_cpus)


@app.command("build-data")
@user_errors
def build_data(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="source binaries to use (CI)")] = None,
    energy_limit: Annotated[int | None, typer.Option(min=1, help="rows to label (CI)")] = None,
    no_energies: Annotated[bool, typer.Option("--no-energies", help="substitution step only")] = False,
    address: AddressOpt = None,
    num_cpus: NumCpusOpt = None,
) -> None:
    """VO dataset: substitution (Ray task per binary), then CHGNet energies (resumable)."""
    from crystalspace.gen.workflow import build_data as run
    from crystalspace.gen.workflow import source_docs

    cfg = _config(config, set_, limit=limit, energy_limit=energy_limit)
    docs = source_docs(cfg)  # a bad source fails here, before Ray starts and before data_dir is made
    _ray(address, num_cpus)
    typer.echo(json.dumps(run(cfg, energies=not no_energies, docs=docs)))


@app.command("train")
@user_errors
def train(
    config: ConfigOpt = None, set_: SetOpt = None, address: AddressOpt = None, num_cpus: NumCpusOpt = None
) -> None:
    """Train the autoencoders and the materials VAE (Ray Train); saves the model folder."""
    from crystalspace.gen.workflow import check_train
    from crystalspace.gen.workflow import train as run

    cfg = _config(config, set_)
    check_train(cfg)
    _ray(address, num_cpus)
    typer.echo(json.dumps(run(cfg)))
    typer.echo(f"model saved to {cfg.model_dir}")


@app.command("sample")
@user_errors
def sample(
    n: Annotated[int | None, typer.Option("--n", min=1, help="latent points to decode")] = None,
    method: Annotated[str | None, typer.Option(help="slerp or random")] = None,
    out: Annotated[str | None, typer.Option(help="output folder [out_dir]")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Sample the latent space; writes CIFs of new materials and tables (generated.parquet, new_materials.csv)."""
    from crystalspace.gen.workflow import sample as run

    cfg = _config(config, set_, method=method)
    counts = run(cfg, n, method, out)
    for k, v in counts.items():
        typer.echo(f"{k:>24}: {v}")
    typer.echo(f"written to {Path(out or cfg.out_dir) / (method or cfg.method)}")


@app.command("evaluate")
@user_errors
def evaluate(
    out: Annotated[str | None, typer.Option(help="output folder [out_dir]")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Tables 1 and 2, rediscovery, stability (E_hull) and the random-search baseline."""
    from crystalspace.gen.workflow import evaluate as run

    cfg = _config(config, set_)
    run(cfg, out)
    typer.echo((Path(out or cfg.out_dir) / "report.md").read_text())
