"""The store against a real Azurite: ETag-safe updates, listing, idempotency, large text."""

import threading
from datetime import timedelta

import pytest

from shared.platform import clock
from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.store import store
from shared.jobs.status import JobStatus


def _record(uid, **kw):
    return JobRecord(uid=uid, entity={"type": "x"}, runner_type="t", **kw)


def test_concurrent_updates_lose_nothing(storage_env):
    jobs = store()
    jobs.create(_record("00000000-0000-0000-0000-000000000001", extra={"n": 0}))

    def bump():
        for _ in range(10):

            def inc(r):
                r.extra["n"] += 1

            jobs.update("00000000-0000-0000-0000-000000000001", inc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert jobs.get("00000000-0000-0000-0000-000000000001").extra["n"] == 40


def test_unchanged_update_writes_nothing(storage_env):
    jobs = store()
    created = jobs.create(_record("u-same"))
    again = jobs.update("u-same", lambda r: None)
    assert again.etag == created.etag
    changed = jobs.update("u-same", lambda r: setattr(r, "message", "new"))
    assert changed.etag != created.etag


def test_get_unknown(storage_env):
    with pytest.raises(JobNotFound):
        store().get("nope")


def test_listing_newest_first_filtered_and_paged(storage_env):
    jobs = store()
    base = clock.now()
    for i in range(7):
        status = JobStatus.RUNNING if i % 2 else JobStatus.COMPLETED
        jobs.create(_record(f"job-{i}", status=status, created=base + timedelta(seconds=i)))
    rows, token = jobs.list(None, 3, None)
    assert [r["uid"] for r in rows] == ["job-6", "job-5", "job-4"] and token
    rows2, token2 = jobs.list(None, 3, token)
    assert [r["uid"] for r in rows2] == ["job-3", "job-2", "job-1"]
    running, _ = jobs.list(JobStatus.RUNNING, 10, None)
    assert [r["uid"] for r in running] == ["job-5", "job-3", "job-1"]
    jobs.update("job-5", lambda r: setattr(r, "status", JobStatus.FAILED))
    running, _ = jobs.list(JobStatus.RUNNING, 10, None)
    assert [r["uid"] for r in running] == ["job-3", "job-1"]


def test_idempotency_claims(storage_env):
    jobs = store()
    assert jobs.claim_idempotency("alice", "k1", "uid-1", timedelta(hours=24)) is None
    assert jobs.claim_idempotency("alice", "k1", "uid-2", timedelta(hours=24)) == "uid-1"
    assert jobs.claim_idempotency("bob", "k1", "uid-3", timedelta(hours=24)) is None
    assert jobs.claim_idempotency("alice", "k1", "uid-4", timedelta(seconds=0)) is None  # expired


def test_large_text_round_trip(storage_env):
    jobs = store()
    text = "x" * 5_000_000
    ref = jobs.put_text("u1", "log.txt", text)
    assert jobs.get_text(ref) == text


def test_log_tail_is_trimmed_to_fit_the_row(storage_env):
    jobs = store()
    jobs.create(_record("u-log", log=["y" * 1000] * 100))
    assert 0 < len(jobs.get("u-log").log) < 100
