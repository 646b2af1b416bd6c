"""Fixtures for the storage tests (the shared ones live in tests/fixtures/)."""

from tests.fixtures.databases import *  # noqa: F403
from tests.fixtures.objectstores import *  # noqa: F403
