"""Element embeddings and compositional embeddings as one matrix product per batch.

A composition A_w B_x C_y D_z gets the stoichiometry-weighted mean of its element vectors,

    V = (w·V_A + x·V_B + y·V_C + z·V_D) / (w + x + y + z),

which is ``ElementEmbeddings``' ``CompositionalEmbedding(...).feature_vector("mean")``. Here a
batch of compositions becomes a (rows × 104) fraction matrix F (column = atomic number) and the
whole batch is ``F @ M`` with M the (104 × d) element matrix. Elements an embedding lacks make
the composition unusable for that embedding: it is dropped and counted, never silently zeroed.
Missing *components* of a present element (NaN in the source table) are 0, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from crystalspace.chem.elements import MAX_Z, element_table
from crystalspace.errors import UserError

#: Our name -> the ``elementembeddings`` data-set name (all ship inside the package, offline).
EMBEDDINGS: dict[str, str] = {
    "magpie": "magpie",
    "mat2vec": "mat2vec",
    "megnet16": "megnet16",
    "oliynyk": "oliynyk",
    "skipatom": "skipatom",
    "random": "random_200",
}


class MapsError(UserError, ValueError):
    """Bad input for the maps pipeline (unknown embedding, empty selection, missing arity)."""


@dataclass(frozen=True)
class ElementMatrix:
    """An element embedding as a dense matrix indexed by atomic number (row 0 is all zeros)."""

    name: str
    matrix: np.ndarray  # (MAX_Z + 1, d) float32
    has: np.ndarray  # (MAX_Z + 1,) bool: the embedding defines this element (has[0] is True)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def check_embedding(name: str) -> str:
    """``name`` if it is a known embedding, else a `MapsError` listing the choices."""
    if name not in EMBEDDINGS:
        raise MapsError(f"unknown embedding {name!r}; choose from {', '.join(EMBEDDINGS)}")
    return name


def parse_embeddings(text: str | None) -> list[str]:
    """``"magpie,mat2vec"`` -> names, checked; None or ``all`` -> every embedding."""
    if text is None or text.strip() == "all":
        return list(EMBEDDINGS)
    names = [check_embedding(n.strip()) for n in text.split(",") if n.strip()]
    if not names:
        raise MapsError("empty embedding list")
    return names


@cache
def load_embedding(name: str) -> ElementMatrix:
    """The element matrix of embedding ``name``, read from the ``elementembeddings`` package."""
    check_embedding(name)
    try:
        from elementembeddings.core import Embedding
    except ImportError:
        raise MapsError("elementembeddings is not installed: pip install 'crystalspace[maps]'") from None
    emb = Embedding.load_data(EMBEDDINGS[name])
    table = element_table()
    dim = len(next(iter(emb.embeddings.values())))
    matrix = np.zeros((MAX_Z + 1, dim), dtype=np.float32)
    has = np.zeros(MAX_Z + 1, dtype=bool)
    has[0] = True
    for z in range(1, MAX_Z + 1):
        vec = emb.embeddings.get(table.symbols[z])
        if vec is not None:
            matrix[z] = np.nan_to_num(np.asarray(vec, dtype=np.float64))
            has[z] = True
    return ElementMatrix(name, matrix, has)


def composition_embedding(z: np.ndarray, n: np.ndarray, em: ElementMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Mean element vectors of a batch of compositions.

    Args:
        z: (rows, k) atomic numbers, 0 where a slot is empty.
        n: (rows, k) stoichiometric factors, 0 where a slot is empty.
        em: the element embedding.

    Returns:
        ``(vectors, ok)``: (rows_ok, d) float32 embeddings of the compositions whose elements
        the embedding defines, and the (rows,) bool mask of those rows.
    """
    z = np.asarray(z, dtype=np.intp)
    n = np.asarray(n, dtype=np.float32)
    ok = em.has[z].all(axis=1)
    z, n = z[ok], n[ok]
    frac = np.zeros((len(z), MAX_Z + 1), dtype=np.float32)
    rows = np.arange(len(z))
    for k in range(z.shape[1]):
        frac[rows, z[:, k]] += n[:, k]
    frac /= n.sum(axis=1, keepdims=True)
    frac[:, 0] = 0.0
    return frac @ em.matrix, ok


def reference_embedding(formulas: list[str], name: str) -> np.ndarray:
    """The same vectors from ``elementembeddings.composition.CompositionalEmbedding`` (slow; checks)."""
    from elementembeddings.composition import CompositionalEmbedding
    from elementembeddings.core import Embedding

    emb = Embedding.load_data(EMBEDDINGS[check_embedding(name)])
    return np.array([CompositionalEmbedding(f, emb).feature_vector("mean") for f in formulas])
