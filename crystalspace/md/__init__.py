"""Batched molecular dynamics (replicas as Ray actors) and the MLFF stability/conductivity analysis."""
