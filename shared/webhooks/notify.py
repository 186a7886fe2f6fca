"""A job's one-off receivers: `notify: [{url, events, signWith}]` in its entity (README "Webhooks").

Checked when the job is started (`check`, from shared/service.py: inline POST /api/jobs, a DMSS entity; a
RecurringJob's template's when it is registered, not again at each run, which must not fail to start because a
receiver moved: every delivery attempt checks the URL again, and the signer is looked up in the owner's own
partition): each URL by the subscriptions' safety rules and `signWith` must name one of the starter's own
subscriptions; a 422 names the entry (`notify[i].url`) and nothing is stored.

Delivered by the subscriptions' machinery: the listener (events.py) adds the job's targets (`targets`) to the
owner's subscriptions. Each is a subscription row of its own, id `ntf_<hash of job uid and index>`, written on
the job's first event and kept beside the owner's partition (store.partition), so it has its own delivery
orchestration per (target, job), its own order, retries, 410 and delivery log, and redelivery works as for any
delivery; the API's subscription list never shows it. Signing (delivery.attempt): with the current secrets of the
subscription `signWith` names, so the receiver verifies with a secret it already holds, rotating that
subscription rotates these too, and no secret is ever made for, stored in or shown with a job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from shared.jobs.access import Caller
from shared.jobs.models import Job, RecurringJob
from shared.jobs.record import JobRecord
from shared.jobs.store import store as job_store
from shared.platform.errors import ValidationFailed
from shared.webhooks import safety, store
from shared.webhooks.models import MAX_NOTIFY_TARGETS, NotifyTarget, Subscription


def _refuse(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", data=[{"loc": where, "msg": message, "type": "notify"}])


def _check_targets(where: str, targets: list[NotifyTarget], owner: str) -> None:
    for i, target in enumerate(targets):  # every URL first: a refused one costs no storage read
        try:
            safety.check_url(target.url)
        except ValidationFailed as error:
            raise _refuse(f"{where}[{i}].url", error.message.replace("the subscription url", "the url")) from None
    known: dict[str, bool] = {}
    for i, target in enumerate(targets):
        if target.signWith not in known:
            known[target.signWith] = store.get_subscription(store.owner_key(owner), target.signWith) is not None
        if not known[target.signWith]:
            raise _refuse(f"{where}[{i}].signWith", "names none of your subscriptions (POST /api/subscriptions)")


def check(job: Job, caller: Caller | None) -> None:
    """Refuse (422) a notify target the safety rules refuse or whose signing subscription is not the caller's."""
    owner = (caller.id if caller is not None else None) or ""
    _check_targets("notify", job.notify or [], owner)
    if isinstance(job, RecurringJob):
        template = Job.model_validate(job.applicationInput)  # validated already: this only reads its targets
        _check_targets("applicationInput.notify", template.notify or [], owner)


def target_id(job_uid: str, index: int) -> str:
    return "ntf_" + hashlib.sha256(f"{job_uid}|notify|{index}".encode()).hexdigest()[:24]


def targets(record: JobRecord) -> list[Subscription]:
    """The job's notify targets as subscriptions (stored on first use); none for a job without `notify`."""
    entity = record.entity or {}
    if record.entity_ref:  # a large entity is in a blob (shared/jobs/operations.py _spill_entity)
        entity = json.loads(job_store().get_text(record.entity_ref))
    raw: Any = entity.get("notify")
    if not raw or not isinstance(raw, list):
        return []
    out = []
    for i, item in enumerate(raw[:MAX_NOTIFY_TARGETS]):
        try:
            target = NotifyTarget.model_validate(item)
        except ValidationError:  # checked when the job started: only an entity written since can get here
            continue
        sub = Subscription(
            id=target_id(record.uid, i),
            owner=record.owner or "",
            url=target.url,
            events=list(target.events),
            description=f"notify target {i} of job {record.uid}",
            sign_with=target.signWith,
        )
        out.append(_stored(sub))
    return out


def _stored(sub: Subscription) -> Subscription:
    """The target as stored (it may have been disabled by a 410 since), written on first use (once: an insert)."""
    found = store.get_subscription(store.owner_key(sub.owner), sub.id)
    if found is not None:
        return found
    store.add_subscription(sub)
    return store.get_subscription(store.owner_key(sub.owner), sub.id) or sub
