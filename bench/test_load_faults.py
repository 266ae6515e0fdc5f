"""The load-and-fault run at a size for the test suite (bench/load.py, `LoadConfig.small()`).

It starts a stack of its own (private Redis and clamd, two workers,
Gunicorn, a reaper loop) on the test database, kills a worker, stops clamd,
restarts Redis and fills DATA_ROOT, then checks that no job or file was
lost. It mounts a tmpfs, so it needs root and skips without it.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings

from bench.load import LoadConfig, run_load
from bench.stack import Stack
import conftest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_load_with_faults_loses_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the load run mounts a tmpfs as DATA_ROOT, which needs root")
    from accounts.keys import create_api_key

    def create_token(stack: Stack) -> tuple[object, str]:
        issued = create_api_key("load", name="load")
        return issued.api_key.tenant_id, issued.token

    report = run_load(
        LoadConfig.small(),
        tmp_path,
        conftest.test_database_url(),
        create_token,
        # The stack's processes must hash API keys as this process does.
        stack_settings={
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "API_KEY_HASH_SECRET": settings.API_KEY_HASH_SECRET,
        },
    )
    assert report.failures == [], "\n".join(report.lines)
