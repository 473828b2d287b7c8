"""Where iMatGen's cell error comes from: the cell autoencoder alone, at several sizes.

The V–O substitution keeps each source binary's lattice, so the cell images of the VO dataset are
those of the MP binaries that pass the study's limits (≤ 20 sites, lengths ≤ 10 Å). This probe
trains only the cell autoencoder on them (`gen.train.fit_autoencoder`: the training's own epoch,
loss and learning-rate schedule) and decodes the test lattices, so it tells whether the
compression step can reach the study's 0.1 Å / 2° on its own, and what it needs.

GPU (~2 min):  python benchmarks/bench_gen_cell_ae_probe.py --out $OUT
CPU smoke:     python benchmarks/bench_gen_cell_ae_probe.py --limit 300 --variants 16:32:1 --out /tmp/probe
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("cell_ae_probe"))
    p.add_argument("--source", default=None, help="MP binary docs (default: shared data)")
    p.add_argument("--limit", type=int, default=None, help="read only this many source docs")
    p.add_argument(
        "--variants",
        default="16:32:20,16:32:60,32:32:20,32:64:60",
        help="width:latent:epochs, comma separated (16:32:20 is gen_full.yaml's cell autoencoder)",
    )
    return p.parse_args()


def lattices(source: str | None, limit: int | None) -> list:
    """Lattices of the source binaries inside the study's limits (one per binary)."""
    from pymatgen.core import Structure

    from crystalspace.gen.dataset import DEFAULT_SOURCE, VOFilter, read_sources

    f = VOFilter()
    out = []
    for doc in read_sources(source or DEFAULT_SOURCE, limit):
        s = Structure.from_dict(doc["structure"])
        if f.admits(s):
            out.append(s.lattice)
    return out


def train_and_score(metric, split, width: int, latent: int, epochs: int, device: str) -> dict:
    """Train one cell autoencoder; RMSE and cell-ok count of the decoded test lattices."""
    import torch

    from crystalspace.gen.images import ImageSpec, cell_errors, decode_cell, render_cells
    from crystalspace.gen.models import ConvAutoencoder
    from crystalspace.gen.train import TrainSettings, fit_autoencoder

    spec, s = ImageSpec(), TrainSettings()
    torch.manual_seed(0)
    net = ConvAutoencoder(spec.cell_grid, latent, width).to(device)
    train, test = (torch.as_tensor(split[k]) for k in ("train", "test"))

    def cells(idx: torch.Tensor) -> torch.Tensor:
        return render_cells(metric[idx].to(device), spec.cell_grid, spec.cell_sigma)

    losses: list[float] = []
    t0 = time.perf_counter()
    fit_autoencoder(
        net,
        lambda: train[torch.randperm(len(train))].split(s.batch_size),
        cells,
        epochs,
        s.lr,
        s.lr_final,
        peak_weight=0.0,
        on_epoch=lambda _, loss: losses.append(loss),
    )
    seconds = time.perf_counter() - t0
    net.eval()
    errs = []
    with torch.no_grad():
        for idx in test.split(256):
            imgs = net(cells(idx))[:, 0].cpu().numpy()
            for i, img in zip(idx.tolist(), imgs, strict=True):
                errs.append(cell_errors(split["lattices"][i], decode_cell(img, spec)))
    e = np.array(errs)
    ok = np.all(e[:, :3] <= 0.1, axis=1) & np.all(e[:, 3:] <= 2.0, axis=1)
    return {
        "width": width,
        "latent": latent,
        "epochs": epochs,
        "final_loss": losses[-1],
        "rmse_abc": [round(float(x), 3) for x in np.sqrt((e[:, :3] ** 2).mean(0))],
        "rmse_angles": [round(float(x), 2) for x in np.sqrt((e[:, 3:] ** 2).mean(0))],
        "cell_ok": f"{int(ok.sum())}/{len(ok)}",
        "train_s": round(seconds, 1),
    }


def main() -> None:
    import torch

    from crystalspace.gen.images import standard_matrix

    a = _args()
    a.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    lats = lattices(a.source, a.limit)
    mats = np.array([standard_matrix(lat) for lat in lats])
    metric = torch.as_tensor(mats @ mats.transpose(0, 2, 1), dtype=torch.float32)
    perm = np.random.default_rng(0).permutation(len(lats))
    n_test = max(1, len(lats) // 10)
    split = {"train": np.sort(perm[n_test:]), "test": np.sort(perm[:n_test]), "lattices": lats}
    print(
        f"{len(lats)} lattices ({len(lats) - n_test} train, {n_test} test), read in {time.perf_counter() - t0:.0f} s"
    )
    rows = []
    for v in a.variants.split(","):
        width, latent, epochs = (int(x) for x in v.split(":"))
        rows.append(train_and_score(metric, split, width, latent, epochs, device))
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "| width | latent | epochs | a/b/c RMSE Å | α/β/γ RMSE ° | cell within 0.1 Å and 2° | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['width']} | {r['latent']} | {r['epochs']} | {' / '.join(map(str, r['rmse_abc']))} | "
            f"{' / '.join(map(str, r['rmse_angles']))} | {r['cell_ok']} | {r['train_s']} |"
        )
    lines.append("| study (whole model, test) | | | 0.09 / 0.09 / 0.11 | 2.1 / 2.1 / 2.0 | | |")
    text = "\n".join(lines) + "\n"
    (a.out / "cell_ae_probe.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
