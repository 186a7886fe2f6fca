"""A job's one-off `notify` targets: their validation (the job model, the start's URL and ownership checks) and
how they are signed (with the secrets of the subscription `signWith` names), against real Azurite and a verifying
receiver on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from shared.platform.identity import Caller
from shared.jobs.record import JobRecord
from shared.platform.errors import ValidationFailed
from shared.webhooks import delivery, enqueue, notify, safety, signing, store
from shared.webhooks.models import PENDING, Subscription
from shared.jobs.validation import validate_job
from tests.webhooks.receiver import Receiver

SUB_ID = "sub_" + "a" * 24


def job(*targets, **extra) -> dict:
    return {
        "type": "JOBCORE:Job",
        "runner": {"type": "JOBCORE:Shell", "script": "true"},
        "notify": list(targets),
        **extra,
    }


def target(url: str = "https://example.org/hook", events=("job.completed",), sign_with: str = SUB_ID, **extra):
    return {"url": url, "events": list(events), "signWith": sign_with, **extra}


@pytest.fixture
def local_runners(monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    monkeypatch.delenv("WEBHOOK_ALLOW_LOCAL", raising=False)
    monkeypatch.delenv("WEBHOOK_ALLOWED_HOSTS", raising=False)


@pytest.mark.parametrize(
    ("targets", "where"),
    [
        ([target()] * 6, "notify"),  # at most 5
        ([target(events=["schedule.suspended"])], "notify.0.events.0"),  # a job's own events only
        ([target(events=[])], "notify.0.events"),
        ([target(sign_with="sub_nothex")], "notify.0.signWith"),
        ([target(secret="whsec_x")], "notify.0.secret"),  # no other field: no secret in an entity
        ([{"url": 5, "events": ["job.completed"], "signWith": SUB_ID}], "notify.0.url"),  # strict: no coercion
        ([{"events": ["job.completed"], "signWith": SUB_ID}], "notify.0.url"),
    ],
)
def test_the_model_refuses_bad_targets_naming_the_field(local_runners, targets, where):
    with pytest.raises(ValidationFailed) as caught:
        validate_job(job(*targets))
    assert where in caught.value.message


def test_a_recurring_templates_targets_are_validated_too(local_runners):
    recurring = {
        "type": "JOBCORE:RecurringJob",
        "runner": {"type": "JOBCORE:RecurringJobHandler"},
        "applicationInput": job(target(events=["nope"])),
        "schedule": {"type": "JOBCORE:CronJob", "cron": "* * * * *"},
    }
    with pytest.raises(ValidationFailed):
        validate_job(recurring)


@pytest.mark.parametrize(
    "url", ["http://example.org/x", "https://169.254.169.254/latest", "https://10.1.2.3/", "https://u:p@example.org/"]
)
def test_an_unsafe_url_is_refused_at_the_start_naming_its_entry(local_runners, monkeypatch, url):
    public = lambda host, port: [host if host[0].isdigit() else "93.184.215.14"]  # noqa: E731 - no DNS here
    monkeypatch.setattr(safety, "_resolve", public)
    parsed = validate_job(job(target(), target(url=url)))
    with pytest.raises(ValidationFailed) as caught:
        notify.check(parsed, Caller(id="alice", name="alice", source="bearer"))
    assert caught.value.message.startswith("notify[1].url: ") and "subscription" not in caught.value.message
    assert caught.value.data[0]["loc"] == "notify[1].url"
    assert "latest" not in caught.value.message and "u:p" not in caught.value.message


def test_target_ids_are_stable_per_job_and_index():
    assert notify.target_id("j1", 0) == notify.target_id("j1", 0)
    assert len({notify.target_id("j1", 0), notify.target_id("j1", 1), notify.target_id("j2", 0)}) == 3
    assert store.partition("p", notify.target_id("j1", 0)) == "np" and store.partition("p", SUB_ID) == "p"


# ---- with storage -------------------------------------------------------------------------------------------------
def _subscription(owner: str, url: str) -> Subscription:
    sub = Subscription(
        id="sub_" + "b" * 24,
        owner=owner,
        url=url,
        events=["schedule.suspended"],
        secrets=[{"value": signing.new_secret(), "expires": None}],
    )
    store.save_subscription(sub)
    return sub


def test_a_target_is_signed_with_the_named_subscriptions_secret_and_holds_none(storage_env, monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL", "true")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "5")
    receiver = Receiver()
    try:
        signer = _subscription("alice", receiver.url("/elsewhere"))
        receiver.secrets = [signer.secrets[0]["value"]]
        entity = job(target(url=receiver.url("/notify"), events=["job.completed"], sign_with=signer.id))
        record = JobRecord(uid="job-1", owner="alice", entity=entity)
        validate_job(entity)
        notify.check(validate_job(entity), Caller(id="alice", name="alice", source="bearer"))
        with pytest.raises(ValidationFailed, match=r"notify\[0\]\.signWith"):  # not bob's subscription
            notify.check(validate_job(entity), Caller(id="bob", name="bob", source="bearer"))

        (ntf,) = notify.targets(record)
        assert ntf.id == notify.target_id("job-1", 0) and ntf.sign_with == signer.id
        row = store._table("WebhookSubscriptions").get_entity("n" + store.owner_key("alice"), ntf.id)
        assert json.loads(row["secrets"]) == [] and row["signWith"] == signer.id
        assert [s.id for s in store.subscriptions_of("alice")] == [signer.id]  # not among the subscriptions

        enqueue.record("job-1", "3-job.completed", "job.completed", [ntf], {"uid": "job-1", "status": "completed"})
        (delivery_row,) = store.deliveries_of("job-1")
        assert delivery_row["state"] == PENDING
        outcome = delivery.attempt({"job": "job-1", "row": delivery_row["RowKey"]})
        assert outcome["final"] and outcome["state"] == "delivered"
        (got,) = receiver.wait_for(1, path="/notify")
        assert got.verified_with == receiver.secrets and signer.secrets[0]["value"] not in got.body

        # the signing subscription deleted: the target's next delivery ends cancelled, sent nowhere
        store.delete_subscription("alice", signer.id)
        enqueue.record("job-2", "3-job.failed", "job.failed", [ntf], {"uid": "job-2"})
        (second,) = store.deliveries_of("job-2")
        assert delivery.attempt({"job": "job-2", "row": second["RowKey"]})["state"] == "cancelled"
        assert len(receiver.received) == 1
    finally:
        receiver.stop()
