"""The operator's guide names what the code has: every metric, and only real variables."""

import re
from pathlib import Path

from app.core import metrics
from app.core.config import Settings

GUIDE = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text("utf-8")
OTHER_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "ADMIN_KEY", "URL", "ID"}
NOT_VARIABLES = {"FOR", "GET", "POST", "INFO", "SELECT"}  # SQL, HTTP verbs, log levels


def test_every_metric_is_explained():
    names = {metric.name for metric in metrics.REGISTRY.collect()}
    assert names
    missing = {name for name in names if name not in GUIDE}
    assert not missing


def test_every_variable_the_guide_names_is_a_setting():
    settings = {name.upper() for name in Settings.model_fields}
    named = set(re.findall(r"`\$?([A-Z][A-Z0-9_]{2,})", GUIDE))
    named = {re.sub(r"_$", "", name) for name in named}
    unknown = {
        name
        for name in named - settings - OTHER_VARIABLES - NOT_VARIABLES
        if not any(setting.startswith(name) for setting in settings)
    }
    assert not unknown
