"""The PostgreSQL event-loop path of challenge-response (``store/async_hotpath.py`` and
``AttestationService.*_async``), on a real PostgreSQL: the ordinary attestation is two
autocommit statements, and every case whose assumptions do not hold falls back to the
locked general path with the same answers. Each test is named after what it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from devattest.service.auth import Principal
from devattest.service.context import AppContext, build_context
from devattest.service.problems import ApiError, Conflict, Forbidden, NotFound
from devattest.service.services import attestation as attestation_module
from devattest.service.settings import Settings
from devattest.store import migrate
from devattest.store.models import Attestation, Challenge, Device, WebhookDelivery
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    reference_values_json,
    trust_anchors_json,
)

RP = Principal(role="relying-party")


@pytest.fixture
def pg_url(make_postgres_database: Callable[[], str]) -> str:
    return make_postgres_database()


def _context(url: str, data: Path) -> AppContext:
    ctx = build_context(Settings(data_dir=data, database_url=url, webhook_worker=False,
                                 webhook_allowed_networks=["192.0.2.0/24"]))
    migrate(ctx.store.engine)
    return ctx


@pytest.fixture
def world(pg_url: str, tmp_path: Path) -> Iterator[tuple[AppContext, dict[str, PsaDevice]]]:
    """One service context on a fresh PostgreSQL database, two devices provisioned."""
    ctx = _context(pg_url, tmp_path / "a")
    now = datetime.now(UTC)
    devices = {"dev-a": PsaDevice("dev-a"), "dev-b": PsaDevice("dev-b")}
    for d in devices:
        ctx.inventory.create_device(device_id=d, model="m1", owner="acme",
                                    lifecycle_state="active", instance_id=None, now=now)
    ctx.provisioning.submit("trust-anchors", name="fleet", media_type="application/json",
                            content=trust_anchors_json(list(devices.values())), now=now)
    ctx.provisioning.submit("reference-values", name="fw", media_type="application/json",
                            content=reference_values_json(), now=now)
    try:
        yield ctx, devices
    finally:
        ctx.store.dispose()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _attest(ctx: AppContext, dev: PsaDevice, *, who: Principal = RP,
                  now: datetime | None = None) -> Any:
    now = now or datetime.now(UTC)
    svc = ctx.attestation
    ch = await svc.issue_challenge_async(who, device_id=dev.device_id, nonce_size=32,
                                         now=now)
    return await svc.submit_evidence_async(who, challenge_id=ch.id,
                                           evidence=dev.token(ch.nonce),
                                           media_type=MEDIA_TYPE, now=now)


def _midway(ctx: AppContext, dev: PsaDevice, between: Callable[[], object], *,
            signer: PsaDevice | None = None) -> Any:
    """Issue a challenge to ``dev`` on the event-loop path, run ``between`` (a change made
    elsewhere in the meantime), then answer it with Evidence from ``signer`` (default: the
    device itself). Returns the submission; raises what the submission raises."""
    svc = ctx.attestation
    now = datetime.now(UTC)

    async def go() -> Any:
        ch = await svc.issue_challenge_async(RP, device_id=dev.device_id, nonce_size=32,
                                             now=now)
        between()
        return await svc.submit_evidence_async(RP, challenge_id=ch.id,
                                               evidence=(signer or dev).token(ch.nonce),
                                               media_type=MEDIA_TYPE, now=now)

    return _run(go())


def _set_device(ctx: AppContext, device_id: str, **values: Any) -> Callable[[], None]:
    def change() -> None:
        with ctx.store.write() as s:
            s.execute(update(Device).where(Device.id == device_id).values(**values))
    return change


def _no_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the general path ran in a worker thread")
    monkeypatch.setattr(attestation_module, "run_in_threadpool", refuse)


def test_steady_state_attestation_runs_on_the_event_loop_and_is_recorded(
        world: tuple[AppContext, dict[str, PsaDevice]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, devices = world
    assert ctx.attestation.has_async_path
    dev = devices["dev-a"]
    # The first result changes the status (none -> affirming) and owes webhooks: the
    # general path records it.
    first = _run(_attest(ctx, dev))
    assert first.result.status.value == "affirming"
    # From then on the status does not change: two statements, no worker thread.
    _no_worker_thread(monkeypatch)
    second = _run(_attest(ctx, dev))
    assert second.result.status.value == "affirming"
    assert second.attestation_id > first.attestation_id
    with ctx.store.read() as s:
        row = s.get(Attestation, second.attestation_id)
        assert row is not None and row.outcome == "appraised" and row.ear == second.ear
        assert row.device_id == "dev-a" and row.status == "affirming"
        device = s.get(Device, "dev-a")
        assert device is not None and device.latest_attestation_id == second.attestation_id
        ch = s.get(Challenge, row.challenge_id)
        assert ch is not None and ch.consumed_at is not None


def test_replayed_evidence_on_the_event_loop_path_is_refused_and_recorded(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    svc = ctx.attestation
    now = datetime.now(UTC)

    async def twice() -> tuple[Any, ApiError]:
        ch = await svc.issue_challenge_async(RP, device_id="dev-a", nonce_size=32, now=now)
        token = dev.token(ch.nonce)
        ok = await svc.submit_evidence_async(RP, challenge_id=ch.id, evidence=token,
                                             media_type=MEDIA_TYPE, now=now)
        with pytest.raises(Conflict) as again:
            await svc.submit_evidence_async(RP, challenge_id=ch.id, evidence=token,
                                            media_type=MEDIA_TYPE, now=now)
        return ok, again.value

    ok, err = _run(twice())
    assert ok.result.status.value == "affirming"
    assert err.error_code == "nonce_replayed"
    with ctx.store.read() as s:
        outcomes = s.scalars(select(Attestation.outcome).where(
            Attestation.device_id == "dev-a").order_by(Attestation.id)).all()
    assert outcomes[-2:] == ["appraised", "nonce_replayed"]


def test_concurrent_duplicate_evidence_across_replicas_consumes_the_nonce_once(
        world: tuple[AppContext, dict[str, PsaDevice]], pg_url: str, tmp_path: Path) -> None:
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    other = _context(pg_url, tmp_path / "b")
    try:
        now = datetime.now(UTC)

        async def race() -> list[Any]:
            ch = await ctx.attestation.issue_challenge_async(RP, device_id="dev-a",
                                                             nonce_size=32, now=now)
            token = dev.token(ch.nonce)
            # Replica A has the challenge in its cache; replica B reads it back.
            return await asyncio.gather(*(
                svc.submit_evidence_async(RP, challenge_id=ch.id, evidence=token,
                                          media_type=MEDIA_TYPE, now=now)
                for svc in (ctx.attestation, other.attestation, ctx.attestation,
                            other.attestation)), return_exceptions=True)

        outcomes = _run(race())
    finally:
        other.store.dispose()
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(accepted) == 1 and len(refused) == 3, outcomes
    assert {e.error_code for e in refused} == {"nonce_replayed"}


def test_challenge_issued_by_another_replica_is_read_back_and_answered(
        world: tuple[AppContext, dict[str, PsaDevice]], pg_url: str, tmp_path: Path) -> None:
    ctx, devices = world
    other = _context(pg_url, tmp_path / "b")
    try:
        now = datetime.now(UTC)
        dev = devices["dev-b"]

        async def across() -> Any:
            ch = await ctx.attestation.issue_challenge_async(RP, device_id="dev-b",
                                                             nonce_size=48, now=now)
            return await other.attestation.submit_evidence_async(
                RP, challenge_id=ch.id, evidence=dev.token(ch.nonce), media_type=MEDIA_TYPE,
                now=now)

        sub = _run(across())
    finally:
        other.store.dispose()
    assert sub.result.status.value == "affirming"


def test_challenge_issued_before_suspension_cannot_be_answered_on_the_event_loop_path(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    with pytest.raises(Conflict) as err:
        _midway(ctx, dev, _set_device(ctx, "dev-a", lifecycle_state="suspended"))
    assert err.value.error_code == "device_inactive"
    with ctx.store.read() as s:
        pending = s.scalars(select(Challenge.consumed_at)
                            .where(Challenge.device_id == "dev-a")).all()
    assert None in pending  # the suspended device's challenge was not consumed
    with pytest.raises(Conflict):
        _run(ctx.attestation.issue_challenge_async(RP, device_id="dev-a", nonce_size=32,
                                                   now=datetime.now(UTC)))


def test_trust_anchor_withdrawn_between_challenge_and_evidence_is_not_trusted(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    """Stale material: the appraisal made before the lock used the old Trust Anchors; the
    recording statement sees the new generation and the general path appraises again."""
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    # Only dev-b's key is trusted from then on (a new version of the same anchors).
    sub = _midway(ctx, dev, lambda: ctx.provisioning.submit(
        "trust-anchors", name="fleet", media_type="application/json",
        content=trust_anchors_json([devices["dev-b"]]), now=datetime.now(UTC)))
    assert sub.result.status.value == "contraindicated"
    with ctx.store.read() as s:
        device = s.get(Device, "dev-a")
        assert device is not None and device.status == "contraindicated"


def test_rebinding_between_challenge_and_evidence_refuses_the_old_key(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    """Key substitution across a re-provisioning: dev-a is bound to dev-b's Instance ID
    after its challenge was issued; Evidence from dev-a's old key must not affirm."""
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    sub = _midway(ctx, dev, _set_device(
        ctx, "dev-a", instance_id=devices["dev-b"].instance_id.hex()))
    assert sub.result.status.value == "contraindicated"


def test_status_change_on_the_event_loop_path_still_queues_webhooks(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    ctx, devices = world
    ctx.webhooks.create(url="https://192.0.2.10/hook", secret="s" * 32,
                        now=datetime.now(UTC))
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))  # none -> affirming
    _run(_attest(ctx, dev))  # affirming -> affirming: no webhook
    tampered = PsaDevice("dev-a", key=dev.key, measurements=(b"\x01" * 32, b"\x02" * 32))
    bad = _run(_attest(ctx, tampered))  # affirming -> warning (unknown firmware)
    new_status = bad.result.status.value
    assert new_status != "affirming"
    with ctx.store.read() as s:
        events = s.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.id)).all()
    assert len(events) == 2
    assert '"status":"affirming"' in events[0]
    assert f'"previous_status":"affirming","status":"{new_status}"' in events[1]


def test_another_devices_credential_cannot_answer_a_cached_challenge(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    ctx, devices = world
    now = datetime.now(UTC)
    svc = ctx.attestation
    intruder = Principal(role="device", device_id="dev-b")

    async def cross() -> str:
        ch = await svc.issue_challenge_async(RP, device_id="dev-a", nonce_size=32, now=now)
        with pytest.raises(Forbidden):
            await svc.submit_evidence_async(intruder, challenge_id=ch.id,
                                            evidence=devices["dev-b"].token(ch.nonce),
                                            media_type=MEDIA_TYPE, now=now)
        with pytest.raises(NotFound):
            await svc.submit_evidence_async(RP, challenge_id="0" * 32, evidence=b"x",
                                            media_type=MEDIA_TYPE, now=now)
        return ch.id

    challenge_id = _run(cross())
    with ctx.store.read() as s:
        assert s.scalar(select(Challenge.consumed_at)
                        .where(Challenge.id == challenge_id)) is None


def test_expired_challenge_on_the_event_loop_path_is_refused(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    issued = datetime.now(UTC)
    svc = ctx.attestation

    async def late() -> None:
        ch = await svc.issue_challenge_async(RP, device_id="dev-a", nonce_size=32,
                                             now=issued)
        with pytest.raises(Conflict) as err:
            await svc.submit_evidence_async(RP, challenge_id=ch.id,
                                            evidence=dev.token(ch.nonce),
                                            media_type=MEDIA_TYPE,
                                            now=issued + timedelta(hours=1))
        assert err.value.error_code == "nonce_expired"

    _run(late())


def test_event_loop_statements_refuse_every_inactive_state() -> None:
    """The statements are constant text: they must name every state the general path
    treats as inactive, or a suspended device could be attested on the event-loop path."""
    from devattest.store import async_hotpath
    from devattest.store.hotpath import INACTIVE_STATES

    for sql in (async_hotpath._ISSUE, async_hotpath._RECORD):
        clause = sql.split("lifecycle_state NOT IN (", 1)[1].split(")", 1)[0]
        assert {s.strip().strip("'") for s in clause.split(",")} == set(INACTIVE_STATES)


def test_event_loop_pool_replaces_a_connection_killed_while_idle(
        world: tuple[AppContext, dict[str, PsaDevice]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database restart or idle timeout kills pooled connections; the next request must
    not fail with 503 because of it."""
    import psycopg

    from devattest.store import _engine
    from devattest.store.async_hotpath import libpq_url

    ctx, devices = world
    dev = devices["dev-a"]
    _run(_attest(ctx, dev))
    monkeypatch.setattr(_engine, "IDLE_PING_SECONDS", 0.0)

    async def killed_then_used() -> Any:
        await _attest(ctx, dev)  # the pool holds a connection now
        url = libpq_url(ctx.store.engine.url.render_as_string(hide_password=False))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = ''")
        await asyncio.sleep(0.1)
        return await _attest(ctx, dev)

    assert _run(killed_then_used()).result.status.value == "affirming"


def test_event_loop_path_can_be_turned_off(pg_url: str, tmp_path: Path) -> None:
    ctx = build_context(Settings(data_dir=tmp_path, database_url=pg_url, webhook_worker=False,
                                 db_event_loop_pool_size=0))
    migrate(ctx.store.engine)
    try:
        assert not ctx.attestation.has_async_path
        dev = PsaDevice("dev-z")
        now = datetime.now(UTC)
        ctx.inventory.create_device(device_id="dev-z", model="m1", owner="acme",
                                    lifecycle_state="active", instance_id=None, now=now)
        ctx.provisioning.submit("trust-anchors", name="fleet", media_type="application/json",
                                content=trust_anchors_json([dev]), now=now)
        # Without Reference Values nothing about the software is affirmed.
        assert _run(_attest(ctx, dev)).result.status.value == "warning"
        ctx.provisioning.submit("reference-values", name="fw", media_type="application/json",
                                content=reference_values_json(), now=now)
        assert _run(_attest(ctx, dev)).result.status.value == "affirming"
    finally:
        ctx.store.dispose()


def test_relayed_evidence_for_a_bound_device_is_refused(
        world: tuple[AppContext, dict[str, PsaDevice]]) -> None:
    """Relay: dev-a (bound to its Instance ID) passes its nonce to dev-b, whose key is just
    as trusted; dev-b's Evidence must not make dev-a trustworthy."""
    ctx, devices = world
    a, b = devices["dev-a"], devices["dev-b"]
    _set_device(ctx, "dev-a", instance_id=a.instance_id.hex())()
    assert _run(_attest(ctx, a)).result.status.value == "affirming"
    sub = _midway(ctx, a, lambda: None, signer=b)
    assert sub.result.status.value == "contraindicated"
    assert [code for code, _ in sub.result.reasons] == ["key_mismatch"]


def test_statement_cancelled_midway_does_not_poison_the_pool(pg_url: str) -> None:
    """A request cancelled while its statement runs (shutdown, a timeout) must not hand a
    connection with a statement still in flight to the next request; nor may the pool lose
    the slot."""
    from devattest.store.async_hotpath import AsyncPgHotPath

    hot = AsyncPgHotPath(pg_url, size=1)

    async def scenario() -> Any:
        async def slow() -> None:
            async with hot._connection() as conn:
                await conn.execute("SELECT pg_sleep(5)")

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The only slot is free again, and the next statement runs on a clean connection.
        async def next_request() -> Any:
            async with hot._connection() as conn:
                cur = await conn.execute("SELECT 41 + 1")
                return (await cur.fetchone())[0]

        return await asyncio.wait_for(next_request(), timeout=3)

    assert _run(scenario()) == 42
    _run(hot.close())


def test_record_step_called_twice_on_one_challenge_writes_nothing_the_second_time(
        world: tuple[AppContext, dict[str, PsaDevice]], pg_url: str) -> None:
    """Statement 2 consumes the nonce as it records: a second recording for the same
    challenge (a retried or concurrent request with other Evidence) must consume nothing and
    append no history row, so one nonce can never yield two appraisals."""
    import secrets

    from devattest.store.async_hotpath import AsyncPgHotPath, IssuedTarget

    ctx, devices = world
    _run(_attest(ctx, devices["dev-a"]))  # the status is set: the next record is plain
    hot = AsyncPgHotPath(pg_url, size=1)
    now = datetime.now(UTC)

    async def twice() -> tuple[int | None, int | None, str]:
        target = await hot.issue(challenge_id=secrets.token_hex(16), device_id="dev-a",
                                 nonce=secrets.token_bytes(32), now=now,
                                 expires_at=now + timedelta(minutes=5))
        assert isinstance(target, IssuedTarget)

        async def record(digest: str) -> int | None:
            return await hot.record_appraised(
                target, generation=target.generation, status=target.status,
                media_type=MEDIA_TYPE, evidence_sha256=digest, reasons=[], ear="ear",
                ear_expires_at=None, now=now)

        first = await record("1" * 64)
        second = await record("2" * 64)
        return first, second, target.challenge_id

    try:
        first, second, challenge_id = _run(twice())
    finally:
        _run(hot.close())
    assert first is not None and second is None
    with ctx.store.read() as s:
        rows = s.scalars(select(Attestation.evidence_sha256)
                         .where(Attestation.challenge_id == challenge_id)).all()
    assert rows == ["1" * 64]
