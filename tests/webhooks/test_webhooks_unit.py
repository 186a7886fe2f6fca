"""The pure parts of shared/webhooks: URL safety, signatures (checked with the standardwebhooks package), backoff,
validation, ids and filters. No storage."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import ValidationFailed
from shared.webhooks import delivery, enqueue, events, safety, schedule_events, signing, store
from shared.webhooks.models import Subscription, parse_subscription

PUBLIC = lambda host, port: ["93.184.215.14"]  # noqa: E731


@pytest.fixture(autouse=True)
def cloud_defaults(monkeypatch):
    for name in ("WEBHOOK_ALLOW_LOCAL", "WEBHOOK_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)


# ---- safety ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fd00::1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ],
)
def test_internal_addresses_are_refused_in_the_cloud(address):
    with pytest.raises(safety.UnsafeUrl) as refused:
        safety.check_url("https://receiver.example/hook", resolver=lambda h, p: [address])
    assert refused.value.status == 422 and "WEBHOOK_ALLOWED_HOSTS" in refused.value.message


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(safety.UnsafeUrl):
        safety.check_url("https://receiver.example/hook", resolver=lambda h, p: ["93.184.215.14", "10.0.0.1"])


@pytest.mark.parametrize(
    "url,rule",
    [
        ("http://receiver.example/hook", "must use https"),
        ("ftp://receiver.example/hook", "must use https"),
        ("https://user:pw@receiver.example/hook", "user name or password"),
        ("https://receiver.example/hook#x", "fragment"),
        ("https:///nohost", "no host"),
        ("https://receiver.example:99999/", "not a valid URL"),
    ],
)
def test_url_rules(url, rule):
    with pytest.raises(safety.UnsafeUrl) as refused:
        safety.check_url(url, resolver=PUBLIC)
    assert rule in refused.value.message
    assert "pw" not in refused.value.message


def test_public_https_is_allowed_and_a_name_that_does_not_resolve_is_not():
    assert safety.check_url("https://receiver.example/hook?a=1", resolver=PUBLIC).hostname == "receiver.example"
    with pytest.raises(safety.UnsafeUrl, match="does not resolve"):
        safety.check_url("https://receiver.example/hook", resolver=lambda h, p: [])


def test_local_development_allows_http_to_loopback_but_not_into_the_network(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL", "true")
    assert safety.check_url("http://127.0.0.1:8080/hook").port == 8080
    with pytest.raises(safety.UnsafeUrl):
        safety.check_url("http://10.1.2.3/hook")
    with pytest.raises(safety.UnsafeUrl):
        safety.check_url("http://169.254.169.254/latest/meta-data")


def test_the_allow_list_names_hosts_or_networks(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "hooks.internal, 10.20.0.0/16")
    assert safety.check_url("https://hooks.internal/x", resolver=lambda h, p: ["10.9.9.9"])
    assert safety.check_url("https://other.internal/x", resolver=lambda h, p: ["10.20.3.4"])
    with pytest.raises(safety.UnsafeUrl):
        safety.check_url("https://other.internal/x", resolver=lambda h, p: ["10.21.3.4"])


# ---- signing ---------------------------------------------------------------------------------------------------
def test_signatures_verify_with_the_package_and_only_with_the_right_secret():
    secret, other = signing.new_secret(), signing.new_secret()
    body = '{"type":"job.completed","timestamp":"2026-01-01T00:00:00Z","data":{}}'
    headers = signing.headers("msg_1", body, [secret])
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["type"] == "job.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("completed", "failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})


def test_during_rotation_both_secrets_sign_and_after_it_only_the_new():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    old, new = signing.new_secret(), signing.new_secret()
    stored = [{"value": new, "expires": None}, {"value": old, "expires": (now + timedelta(hours=1)).isoformat()}]
    body = "{}"
    during = signing.headers("msg_1", body, signing.valid_secrets(stored, now))
    assert len(during["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, during, json_parse=False)
    Webhook(new).verify(body, during, json_parse=False)
    after = signing.headers("msg_1", body, signing.valid_secrets(stored, now + timedelta(hours=2)))
    Webhook(new).verify(body, after, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, after, json_parse=False)


# ---- backoff and validation ------------------------------------------------------------------------------------
def test_backoff_doubles_with_jitter_up_to_the_cap(monkeypatch):
    monkeypatch.setenv("WEBHOOK_RETRY_FIRST_SECONDS", "5")
    monkeypatch.setenv("WEBHOOK_RETRY_MAX_SECONDS", "3600")
    rng = random.Random(1)
    delays = [delivery.backoff(n, rng) for n in range(1, 16)]
    for n, value in enumerate(delays, start=1):
        full = min(3600, 5 * 2 ** (n - 1))
        assert full / 2 <= value <= full
    assert len(set(delays)) == len(delays), "jittered"
    total = sum(min(3600, 5 * 2 ** (n - 1)) for n in range(1, 40))
    assert total > 24 * 3600, "the default schedule reaches the 24 h window"


def test_a_subscription_is_validated_without_echoing_values():
    with pytest.raises(ValidationFailed) as refused:
        parse_subscription({"url": "https://x.example", "events": ["job.exploded-secretvalue"]})
    assert "secretvalue" not in refused.value.message
    with pytest.raises(ValidationFailed):
        parse_subscription({"url": "https://x.example", "events": []})
    with pytest.raises(ValidationFailed):
        parse_subscription({"url": "https://x.example", "events": ["job.failed"], "filter": {"owner": "x"}})
    with pytest.raises(ValidationFailed):
        parse_subscription(["not", "an", "object"])
    ok = parse_subscription({"url": "https://x.example", "events": ["job.failed", "job.started", "job.failed"]})
    assert ok.events == ["job.started", "job.failed"]


def test_filters_and_event_order():
    sub = Subscription(
        "sub_x", "", "https://x", ["job.completed"], {"labelPrefix": "nightly", "runnerType": "JOBCORE:Shell"}
    )
    job = {"uid": "u", "label": "nightly build", "runnerType": "jobcore:shell", "scheduleUid": None}
    assert sub.wants("job.completed", job)
    assert not sub.wants("job.failed", job)
    assert not sub.wants("job.completed", {**job, "label": "daily"})
    assert not sub.wants("job.completed", {**job, "runnerType": "other"})
    sub.filter = {"scheduleUid": "s1"}
    assert sub.wants("job.completed", {**job, "scheduleUid": "s1"}) and not sub.wants("job.completed", job)
    sub.disabled = True
    assert not sub.wants("job.completed", {**job, "scheduleUid": "s1"})
    run = JobRecord(uid="r", status=JobStatus.COMPLETED, triggered_by="Schedule (s1)")
    assert events.event_types(run) == ["job.started", "schedule.run.started", "job.completed"]
    keys = [events.event_key(t) for t in ("job.completed", "job.running", "job.started")]
    assert sorted(keys) == [events.event_key(t) for t in ("job.started", "job.running", "job.completed")]
    assert (
        events.event_id("a", "job.started")
        == events.event_id("a", "job.started")
        != events.event_id("b", "job.started")
    )


def test_delivery_ids_round_trip_and_nonsense_names_nothing():
    uid = "6ea47609-22f7-453f-b9e1-7be60a772aae"
    made = store.delivery_id(uid, "3-job.completed~sub_abc")
    assert store.parse_delivery_id(made) == (uid, "3-job.completed~sub_abc")
    for bad in ("", "dlv_", "dlv_!!!", "xyz", "dlv_" + "A" * 500, store.delivery_id("it's", "x")):
        assert store.parse_delivery_id(bad) is None


def test_a_long_log_is_shortened_to_fit_a_row():
    data = {"uid": "u", "log": ["line %d %s" % (i, "y" * 200) for i in range(500)]}
    text = enqueue.payload("job.completed", "2026-01-01T00:00:00Z", data)
    assert len(text) <= enqueue.MAX_PAYLOAD_CHARS and '"line 499' in text


def test_the_tick_call_costs_nothing_when_nothing_was_missed_skipped_or_suspended(monkeypatch):
    def no_io(*args, **kwargs):
        raise AssertionError("no storage call expected")

    monkeypatch.setattr(store, "subscriptions_of", no_io)

    class Moved:
        missed, skipped = 0, 0

    schedule_events.claimed(JobRecord(uid="s", kind="recurring"), Moved())
    schedule_events.claimed(None, Moved())
    runs = [
        {"scheduled": "2026-01-01T00:01:00Z", "status": "missed"},
        {"scheduled": None, "status": "missed", "count": 5},
        {"scheduled": "2026-01-01T00:03:00Z", "status": "missed"},
        {"scheduled": "2026-01-01T00:02:00Z", "status": "completed"},
    ]
    assert schedule_events._newest(runs, "missed", 1) == ["2026-01-01T00:03:00Z"]
    assert schedule_events._newest(runs, "missed", 7) == ["2026-01-01T00:01:00Z", "2026-01-01T00:03:00Z"]
    assert schedule_events._newest(runs, "skipped", 1) == []
