"""Where the suite's pieces live, for the support modules and the tests that start other processes:
the repository root, tests/, and tests/support/ (which conftest.py puts on sys.path, so a test imports
a support module by its bare name: `from conv_ref import ...`)."""

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
ROOT = TESTS.parent
