"""Hypothesis settings for the fuzz tests, chosen by HYPOTHESIS_PROFILE.

``ci`` (the default) keeps the suite quick; ``long`` is what
``scripts/fuzz_long.py`` runs, over 100,000 inputs in all. The settings are
applied test by test with `fuzz`, never loaded globally, so that other tests
that use hypothesis keep their own.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
#: How many examples the long run gives to a test of each weight.
LONG_EXAMPLES = {"fast": 12_500, "slow": 1_500}
CI_EXAMPLES = {"fast": 200, "slow": 60}
_SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def fuzz(weight: str = "fast") -> settings:
    """Return the settings of a fuzz test; `weight` is ``fast`` or ``slow``."""
    examples = (LONG_EXAMPLES if PROFILE == "long" else CI_EXAMPLES)[weight]
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=_SLOW_CHECKS,
        # The long run is about volume; shrinking a failure is still done.
        print_blob=True,
    )
