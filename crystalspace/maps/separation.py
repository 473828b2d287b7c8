"""How well do the categories separate? Numbers, not only pictures.

For one map (embedding × method × arity) and for the full embedding space it reports:

- ``knn``: 5-fold cross-validated accuracy of a 10-nearest-neighbour classifier predicting the
  category from the coordinates (chance is ``chance``, the largest category's share: 0.25 for
  a balanced sample);
- ``silhouette``: the mean silhouette of the category labels (-1..1; 0 means overlapping
  clouds), on a seeded subsample of at most 4,000 points;
- ``knn_anion``: the same k-NN accuracy for the anion class, in the 2-D map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KNN_K = 10
FOLDS = 5
SILHOUETTE_MAX = 4000


def knn_accuracy(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cross-validated k-NN accuracy of ``labels`` from features ``x`` (standardised)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, counts = np.unique(labels, return_counts=True)
    folds = int(min(FOLDS, counts.min()))
    if len(counts) < 2 or folds < 2:
        return float("nan")
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=KNN_K))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, x, labels, cv=cv, n_jobs=1).mean())


def silhouette(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Mean silhouette of ``labels`` in ``x`` (standardised), on at most 4,000 points."""
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(labels)) < 2:
        return float("nan")
    size = min(SILHOUETTE_MAX, len(x))
    return float(
        silhouette_score(StandardScaler().fit_transform(x), labels, sample_size=size, random_state=seed)
    )


def chance(labels: np.ndarray) -> float:
    """Accuracy of always guessing the largest class."""
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / counts.sum())


def to_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A table (e.g. the separation table) as GitHub markdown, floats to ``digits`` places."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append(
            "| " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row) + " |"
        )
    return "\n".join(lines)
