"""Where the tests find the checkout: the one definition of these paths for every test file.

Importable as ``_paths`` because ``[tool.pytest.ini_options] pythonpath`` puts ``tests/`` on
``sys.path`` (never the repository root: the wheel check runs tests against the installed package).
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
"""The repository root (pyproject.toml, cluster/, pipelines/, benchmarks/, examples/)."""
DATA = TESTS / "data"
"""Committed test fixtures (tests/data/: mlff_subset, md_reference, csp_subset, gen_subset)."""
BENCHMARKS = ROOT / "benchmarks"
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
"""The optional shared data folder beside the checkout (full reference trajectories), if present."""
INTEGRATION = TESTS / "integration"
