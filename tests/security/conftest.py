# The payment API's fixtures: an app against the sandbox, seeded Medusa sessions, keys.
from tests.api.netvalve.conftest import api, api_factory  # noqa: F401
