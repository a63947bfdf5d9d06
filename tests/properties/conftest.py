"""Fixtures for the property tests: the API harness of tests/api/netvalve, and a sandbox of
their own that records the webhooks it sends."""

from collections.abc import Iterator

import pytest

from tests.api.netvalve.conftest import api_factory  # noqa: F401
from tests.fixtures import gateway


@pytest.fixture(scope="module")
def recording_sandbox() -> Iterator[str]:
    """A sandbox that sends every event to a receiver answering 200, so `/_sandbox/webhooks`
    lists each event once. The suite's shared sandbox sends none (it has no webhook URL), and
    tests that reset this one cannot disturb others."""
    # Pending payments stay pending until a rule settles them: nothing in the machine may depend
    # on how fast it runs, or Hypothesis could not replay what it found.
    with gateway.recording_sandbox(sandbox_pending_seconds=86_400) as (url, _):
        yield url
