"""Generative inverse design with invertible crystal images (iMatGen, Noh et al., Matter 2019)."""
