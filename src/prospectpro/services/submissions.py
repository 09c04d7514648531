"""Submitting campaigns: one short transaction for a whole group of them.

Everything that can refuse a submission happens here, in this order: the
request is prepared (business type and location resolved, from the local
places index only), a new anonymous session is admitted (per client address),
an Idempotency-Key is looked up, the owner's rate is checked; both limits are
token buckets in the store (``services.rate_limits``). Then the group's new sessions,
campaigns, jobs and first events are written with one statement per table
and committed once. No provider is called on this path.

The CLI submits one campaign at a time (``submit_campaign``); the API hands
its requests to a ``Submitter``, which writes whatever is waiting as one group.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import DataError, IntegrityError

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest, JobStatus
from prospectpro.domain.rate import Rate
from prospectpro.errors import Conflict, RateLimited, UserError
from prospectpro.jobs.model import Job, utcnow
from prospectpro.jobs.queue import NewJob, insert_jobs
from prospectpro.services.campaigns import PreparedCampaign, prepare_campaign
from prospectpro.services.rate_limits import new_session_bucket, spend, too_many_sessions
from prospectpro.services.users import Principal, insert_sessions
from prospectpro.store.db import Database
from prospectpro.store.schema import campaigns, discovery_jobs

_INSERT_CAMPAIGN = campaigns.insert()

@dataclass(frozen=True)
class SubmitRequest:
    campaign: CampaignRequest | PreparedCampaign
    owner_id: str | None = None  # None: a new anonymous session is opened and owns the campaign
    session_label: str | None = None  # the new session's name (never an identity)
    notify_url: str | None = None  # already checked to be public by the caller (that needs the network)
    idempotency_key: str | None = None
    per_minute: int | None = None  # the owner's submission rate; None: unlimited
    session_limit: tuple[str, int] | None = None  # opening a new session: (client address, sessions per minute)


@dataclass(frozen=True)
class Submission:
    job: Job
    campaign_id: str
    created: bool  # False when an idempotency key returned an earlier job
    session: tuple[Principal, str] | None = None  # the new anonymous session and its token, shown once

    @property
    def session_token(self) -> str | None:
        return self.session[1] if self.session else None

    @property
    def notify_secret(self) -> str | None:
        """The webhook signing secret, shown to the submitter once (not on a replay)."""
        notify = self.job.config.get("notify")
        return notify.get("secret") if notify and self.created else None


# A refusal is a UserError; a value the database refused is its DataError (a 500: validation missed it).
Outcome = Submission | UserError | DataError


def submit_campaign(
    db: Database,
    settings: Settings,
    owner_id: str,
    campaign: CampaignRequest | PreparedCampaign,
    *,
    idempotency_key: str | None = None,
    per_minute: int | None = None,
) -> Submission:
    """One campaign, in its own transaction (the CLI's path)."""
    request = SubmitRequest(campaign, owner_id=owner_id, idempotency_key=idempotency_key, per_minute=per_minute)
    outcome = write_submissions(db, settings, [request])[0]
    if not isinstance(outcome, Submission):
        raise outcome
    return outcome


def write_submissions(db: Database, settings: Settings, requests: Sequence[SubmitRequest]) -> list[Outcome]:
    """Each request's submission, or the error that refused it; valid ones share one transaction."""
    outcomes: dict[int, Outcome] = {}
    ready: dict[int, PreparedCampaign] = {}
    for i, request in enumerate(requests):
        try:
            ready[i] = _prepare(db, request)
        except UserError as exc:
            outcomes[i] = exc
    if ready:
        try:
            outcomes.update(_write(db, settings, requests, ready))
        except (IntegrityError, DataError) as exc:
            # IntegrityError: two API processes raced with one Idempotency-Key
            # on PostgreSQL (both looked before either inserted); one by one,
            # each loser answers with the winner's job. DataError: the database
            # refused one request's values, which must not fail the rest of its group.
            if len(ready) == 1 and isinstance(exc, DataError):
                raise
            for i, prepared in ready.items():
                try:
                    outcomes[i] = _write_alone(db, settings, requests[i], prepared)
                except DataError as refused:
                    outcomes[i] = refused
    return [outcomes[i] for i in range(len(requests))]


def _prepare(db: Database, request: SubmitRequest) -> PreparedCampaign:
    if isinstance(request.campaign, PreparedCampaign):
        return request.campaign
    return prepare_campaign(db, request.campaign, notify_url=request.notify_url)


def _write_alone(db: Database, settings: Settings, request: SubmitRequest, prepared: PreparedCampaign) -> Outcome:
    try:
        return _write(db, settings, [request], {0: prepared})[0]
    except IntegrityError:
        if not (request.owner_id and request.idempotency_key):
            raise
        with db.read() as conn:
            try:
                earlier = _earlier(conn, request.owner_id, request.idempotency_key, prepared.digest)
            except UserError as exc:
                return exc
        if earlier is None:
            raise
        return earlier


def _write(
    db: Database, settings: Settings, requests: Sequence[SubmitRequest], ready: Mapping[int, PreparedCampaign]
) -> dict[int, Outcome]:
    now = utcnow()
    outcomes: dict[int, Outcome] = {}
    with db.write() as conn:
        # A new anonymous session only for a request that validated, and within its address's limit.
        anonymous = [i for i in ready if requests[i].owner_id is None]
        limits = {i: limit for i in anonymous if (limit := requests[i].session_limit)}
        waits = spend(conn, [new_session_bucket(limit) for limit in limits.values()], now)
        for i, wait in zip(limits, waits):
            if wait:
                outcomes[i] = too_many_sessions(wait)
        anonymous = [i for i in anonymous if i not in outcomes]
        sessions = dict(zip(anonymous, insert_sessions(conn, [requests[i].session_label for i in anonymous])))
        owners = {i: requests[i].owner_id or sessions[i][0].user_id for i in ready if i not in outcomes}

        # An Idempotency-Key seen before (in the store, or earlier in this group) answers with that job.
        first_with_key: dict[tuple[str, str], int] = {}
        replays: dict[int, int] = {}
        for i, prepared in ready.items():
            key = requests[i].idempotency_key
            if not key or i not in owners:
                continue
            if (owners[i], key) in first_with_key:
                replays[i] = first_with_key[(owners[i], key)]
                continue
            try:
                earlier = _earlier(conn, owners[i], key, prepared.digest)
            except UserError as exc:
                outcomes[i] = exc
                continue
            if earlier is not None:
                outcomes[i] = earlier
            else:
                first_with_key[(owners[i], key)] = i

        fresh = [i for i in ready if i not in outcomes and i not in replays]
        limited = [i for i in fresh if requests[i].per_minute]
        waits = spend(conn, [(f"submit:{owners[i]}", Rate(requests[i].per_minute or 0)) for i in limited], now)
        for i, wait in zip(limited, waits):
            if wait:
                per_minute = requests[i].per_minute
                outcomes[i] = RateLimited(
                    f"at most {per_minute} campaigns per minute; try again in {wait} s", retry_after=wait
                )
        fresh = [i for i in fresh if i not in outcomes]

        rows = {i: _campaign_row(owners[i], ready[i], now) for i in fresh}
        if rows:
            conn.execute(_INSERT_CAMPAIGN, list(rows.values()))
        new_jobs = [
            NewJob(
                campaign_id=rows[i]["id"],
                owner_id=owners[i],
                config=_job_config(ready[i]),
                max_attempts=settings.max_attempts,
                idempotency_key=requests[i].idempotency_key,
                request_hash=ready[i].digest,
            )
            for i in fresh
        ]
        for i, job in zip(fresh, insert_jobs(conn, new_jobs, now)):
            outcomes[i] = Submission(job=job, campaign_id=job.campaign_id, created=True, session=sessions.get(i))

    for i, first in replays.items():
        outcomes[i] = _replay_of(outcomes[first], ready[i].digest, ready[first].digest)
    return outcomes


def _replay_of(first: Outcome, digest: str, first_digest: str) -> Outcome:
    if not isinstance(first, Submission):
        return first
    if digest != first_digest:
        return Conflict("this Idempotency-Key was already used with a different request")
    return Submission(job=first.job, campaign_id=first.campaign_id, created=False)


def _earlier(conn: Connection, owner_id: str, key: str, digest: str) -> Submission | None:
    row = conn.execute(
        select(discovery_jobs).where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used with a different request")
    job = Job.from_row(row)
    return Submission(job=job, campaign_id=job.campaign_id, created=False)


def _campaign_row(owner_id: str, prepared: PreparedCampaign, now: datetime) -> dict[str, Any]:
    request = prepared.request
    return {
        "id": str(uuid.uuid4()),
        "owner_id": owner_id,
        "business_type": prepared.business_type.name,
        "location": prepared.area.label,
        "max_results": request.max_results,
        "budget_limit": request.budget_limit,
        "min_score": request.min_score,
        "tier": request.tier.value,
        "include_delivered": request.include_delivered,
        "status": JobStatus.pending.value,
        "results_count": 0,
        "total_cost": 0,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
    }


def _job_config(prepared: PreparedCampaign) -> dict[str, Any]:
    request, business_type = prepared.request, prepared.business_type
    config: dict[str, Any] = {
        "business_type": business_type.name,
        "business_type_label": business_type.label,
        "tags": list(business_type.tags),
        "location": request.location,
        "area": prepared.area.to_dict(),
        "max_results": request.max_results,
        "budget_limit": str(request.budget_limit),
        "min_score": request.min_score,
        "tier": request.tier.value,
        "include_delivered": request.include_delivered,
    }
    if prepared.notify_url:
        config["notify"] = {"url": prepared.notify_url, "secret": secrets.token_hex(32)}
    return config
