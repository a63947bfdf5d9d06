"""The migrations, run through the real `alembic` command line, next to Medusa's tables."""

import asyncio
import shutil
import subprocess
import sys

import asyncpg
import pytest

from app.dev.embedded_pg import asyncpg_dsn
from tests.conftest import PROJECT_ROOT, Databases, create_medusa_tables
from tests.fixtures.environment import bare_env
from tests.fixtures.log_audit import audit_text
from tests.fixtures.medusa import MEDUSA_TABLE_NAMES


def alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_ROOT,
        env=bare_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    audit_text(f"alembic {' '.join(args)}", done.stdout + done.stderr)
    return done


async def _tables(database_url: str) -> set[str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


def tables(database_url: str) -> set[str]:
    return asyncio.run(_tables(database_url))


def execute(database_url: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def medusa_database(databases: Databases) -> str:
    url = databases.create("migrations")
    asyncio.run(create_medusa_tables(url))
    return url


class TestMigrations:
    def test_upgrade_downgrade_upgrade_beside_medusa(self, medusa_database):
        medusa = set(MEDUSA_TABLE_NAMES)

        upgraded = alembic(medusa_database, "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stderr
        assert {"webhook_events", "alembic_version"} | medusa <= tables(medusa_database)

        downgraded = alembic(medusa_database, "downgrade", "base")
        assert downgraded.returncode == 0, downgraded.stderr
        after_downgrade = tables(medusa_database)
        assert "webhook_events" not in after_downgrade
        assert medusa <= after_downgrade

        again = alembic(medusa_database, "upgrade", "head")
        assert again.returncode == 0, again.stderr
        assert "webhook_events" in tables(medusa_database)

    def test_check_sees_no_changes_with_medusa_tables_present(self, medusa_database):
        assert alembic(medusa_database, "upgrade", "head").returncode == 0

        check = alembic(medusa_database, "check")

        assert check.returncode == 0, check.stdout + check.stderr
        assert "No new upgrade operations detected" in check.stdout + check.stderr

    def test_check_still_detects_drift_in_our_own_tables(self, medusa_database):
        # Proves the filter hides Medusa, not everything: a drift in our table is reported.
        assert alembic(medusa_database, "upgrade", "head").returncode == 0
        execute(medusa_database, "DROP INDEX ix_webhook_events_transaction_id")

        check = alembic(medusa_database, "check")

        assert check.returncode != 0
        assert "ix_webhook_events_transaction_id" in check.stdout + check.stderr

    def test_autogenerate_proposes_nothing_for_medusa(self, medusa_database, tmp_path):
        assert alembic(medusa_database, "upgrade", "head").returncode == 0
        execute(medusa_database, "DROP INDEX ix_webhook_events_client_order_id")

        # Autogenerate into a copy of alembic/, so the repository's versions stay untouched.
        shutil.copytree(PROJECT_ROOT / "alembic", tmp_path / "alembic")
        ini = (PROJECT_ROOT / "alembic.ini").read_text().replace("[post_write_hooks]", "[unused]")
        (tmp_path / "alembic.ini").write_text(ini)
        generated = alembic(
            medusa_database,
            "-c",
            str(tmp_path / "alembic.ini"),
            "revision",
            "--autogenerate",
            "-m",
            "probe",
            "--rev-id",
            "probe",
        )

        assert generated.returncode == 0, generated.stderr
        [script] = (tmp_path / "alembic" / "versions").glob("*_probe_probe.py")
        text = script.read_text()
        assert "ix_webhook_events_client_order_id" in text
        for table in MEDUSA_TABLE_NAMES:
            assert f'"{table}"' not in text, table
        assert "drop_table" not in text

    def test_0008_adds_the_medusa_outbox_and_takes_it_away_again(self, medusa_database):
        assert alembic(medusa_database, "upgrade", "0007").returncode == 0
        assert "medusa_notifications" not in tables(medusa_database)

        upgraded = alembic(medusa_database, "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stderr
        assert "medusa_notifications" in tables(medusa_database)
        current = alembic(medusa_database, "current")
        assert "0008 (head)" in current.stdout, current.stdout + current.stderr

        downgraded = alembic(medusa_database, "downgrade", "0007")
        assert downgraded.returncode == 0, downgraded.stderr
        assert "medusa_notifications" not in tables(medusa_database)
        assert {"payments", "webhook_events", "hpf_sessions"} <= tables(medusa_database)
