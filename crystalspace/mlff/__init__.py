"""Machine-learning force fields: models, the autograd potential, training, evaluation, reference data."""
