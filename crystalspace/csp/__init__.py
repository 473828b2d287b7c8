"""Crystal structure prediction from predicted distance matrices (AlphaCrystal-II)."""
