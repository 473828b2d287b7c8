"""Maps of chemical space: compositional embeddings, 2-D projections, figures and an explorer.

``sample`` draws seeded per-category samples from the lake, ``embeddings`` turns compositions into
stoichiometry-weighted mean element vectors, ``reduce`` projects them to 2-D (PCA, t-SNE, UMAP),
``separation`` measures how well the categories separate, ``figures`` and ``explorer`` show the
maps, and ``embed_lake`` embeds a whole lake selection with Ray Data (``map embed``).
"""
