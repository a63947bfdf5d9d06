"""The test store itself: its configuration and seed script type-check against Medusa 2.21.2's
own types (Medusa runs them through ts-node/SWC, which does not check types)."""

from pathlib import Path

import pytest

from tests.medusa.conftest import node_env, run_logged

pytestmark = pytest.mark.medusa


def test_the_store_config_and_seed_script_type_check(medusa_store: Path) -> None:
    run_logged("store-typecheck", ["npm", "run", "typecheck"], medusa_store, node_env())


def test_pins_medusa_2_21_2(medusa_store: Path) -> None:
    for package in ("medusa", "framework", "cli"):
        manifest = medusa_store / "node_modules" / "@medusajs" / package / "package.json"
        assert '"version": "2.21.2"' in manifest.read_text(), package
