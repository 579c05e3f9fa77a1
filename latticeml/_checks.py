"""Old home of :func:`latticeml.checks.finite_float`; kept until every module imports from :mod:`latticeml.checks`."""

from .checks import finite_float  # noqa: F401
