"""A served Verifier settles at start-up: the provisioned material is built before the first
Evidence, and what start-up allocated is frozen out of the garbage collector's full passes
(a fleet's Trust Anchors are hundreds of thousands of long-lived objects)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devattest.service.app import create_app
from devattest.service.settings import Settings
from devattest.store import open_store
from tests.integration.service._sim import add_device, ensure_signing_key

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    url = f"sqlite:///{tmp_path / 'devattest.db'}"
    open_store(url).dispose()
    add_device(url, "dev-a", model="m1", owner="acme")
    ensure_signing_key(tmp_path)
    gc.unfreeze()
    try:
        yield Settings(data_dir=tmp_path, database_url=url, webhook_worker=False,
                       retention_interval_seconds=0, dashboard=False)
    finally:
        gc.unfreeze()  # the test process keeps collecting everything


def test_a_served_app_builds_its_material_and_freezes_its_start_up_heap(
        settings: Settings) -> None:
    app = create_app(settings, settle=True)
    assert app.state.ctx.material.cached is None
    with TestClient(app):
        assert app.state.ctx.material.cached is not None
        assert gc.get_freeze_count() > 0
    app.state.ctx.store.dispose()


def test_an_app_built_in_process_leaves_the_collector_alone(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app):
        assert gc.get_freeze_count() == 0
        assert app.state.ctx.material.cached is None
    app.state.ctx.store.dispose()
