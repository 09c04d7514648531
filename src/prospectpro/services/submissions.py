"""Submitting campaigns: one short transaction for a whole group of them.

Everything that can refuse a submission happens here, in this order: the
request is checked and prepared (its Idempotency-Key's form; business type and
location resolved, from the local places index only; its tier, sources and
budget checked as the quote checks them: ``services.quote.plan_campaign``), a new anonymous session
is admitted (per client address), an Idempotency-Key is looked up, the owner's
rate is checked; both limits are token buckets in the store
(``services.rate_limits``). Then the group's new campaigns, jobs and first
events are written with one statement per table and committed once. No
provider is called on this path.

Every request of a group has its own outcome, and only its own: each step below
acts on the requests that have none yet. If the group's transaction fails
because of one of its requests (a value the database refused, a key raced by
another process, a bug), nothing of it was written and each request is
written again alone. If the database itself failed, nothing was written and
each request gets that error.

The CLI submits one campaign at a time (``submit_campaign``); the API hands
its requests to a ``Submitter``, which writes whatever is waiting as one group.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignConfig, CampaignRequest, Notify
from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.domain.tiers import parse_sources
from prospectpro.errors import Conflict, InvalidInput
from prospectpro.jobs.model import Job
from prospectpro.jobs.queue import NewJob, insert_jobs, job_by_idempotency_key, job_exists
from prospectpro.pipeline.kind import CAMPAIGN
from prospectpro.services.campaigns import PreparedCampaign, prepare_campaign
from prospectpro.services.quote import plan_campaign
from prospectpro.services.rate_limits import admit_sessions, admit_submissions
from prospectpro.services.users import Principal, insert_sessions
from prospectpro.store.campaigns import insert_campaigns
from prospectpro.store.db import Database
from prospectpro.store.schema import discovery_jobs

log = logging.getLogger(__name__)


# An Idempotency-Key: visible ASCII (0x21-0x7E), at most what the store's column holds.
IDEMPOTENCY_KEY_MAX_LENGTH: int = discovery_jobs.c.idempotency_key.type.length  # type: ignore[attr-defined]
IDEMPOTENCY_KEY_PATTERN = rf"^[\x21-\x7E]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$"


def check_idempotency_key(key: str) -> str:
    """The key, or InvalidInput: the one rule for every edge that takes one (and for the writer itself)."""
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise InvalidInput(f"Idempotency-Key must be 1–{IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters")
    return key


@dataclass(frozen=True)
class SubmitRequest:
    campaign: CampaignRequest | PreparedCampaign
    owner_id: str | None = None  # None: a new anonymous session is opened and owns the campaign
    session_label: str | None = None  # the new session's name (never an identity)
    notify_url: str | None = None  # already checked to be public by the caller (that needs the network)
    idempotency_key: str | None = None
    per_minute: int | None = None  # the owner's submission rate; None: unlimited
    session_limit: tuple[str, int] | None = None  # opening a new session: (client address, sessions per minute)
    anonymous: bool | None = None  # the owner is an anonymous session; None: looked up when it matters (a paid tier)


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


# A refusal is a UserError. Any other exception failed that request alone (a value the database
# refused: a 500, validation missed it), or its whole group (OperationalError: the database is down).
Outcome = Submission | Exception


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


@dataclass(eq=False)
class _Slot:
    """One request on its way through ``write_submissions``.

    What a write transaction decides (owner, session, twin, outcome) is undone
    if that transaction fails, so that the request can be written again alone.
    """

    request: SubmitRequest
    prepared: PreparedCampaign | None = None
    owner: str | None = None
    session: tuple[Principal, str] | None = None
    twin: _Slot | None = None  # the group's first request with this owner and key: this one repeats it
    outcome: Outcome | None = None

    @property
    def fresh(self) -> bool:
        """Still to be written as a new campaign."""
        return self.outcome is None and self.twin is None

    def undo(self) -> None:
        self.owner = self.session = self.twin = self.outcome = None


def write_submissions(db: Database, settings: Settings, requests: Sequence[SubmitRequest]) -> list[Outcome]:
    """Each request's submission, or the error that refused or failed it; valid ones share one transaction."""
    slots = [_Slot(request) for request in requests]
    for slot in slots:
        _prepare(db, settings, slot)
    pending = [slot for slot in slots if slot.outcome is None]
    if pending:
        try:
            _write(db, settings, pending)
        except Exception as exc:
            # (Logged without the statement's parameters: they hold webhook secrets.)
            reason = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
            if _database_failed(exc):
                log.warning("writing %d submissions failed, the database: %s", len(pending), reason)
                for slot in pending:
                    slot.outcome = exc
            else:
                log.warning("writing %d submissions together failed (%s); writing each alone", len(pending), reason)
                _write_each_alone(db, settings, pending)
    outcomes = [slot.outcome for slot in slots]
    assert all(outcome is not None for outcome in outcomes), "every request is answered"
    return outcomes  # type: ignore[return-value]


def _prepare(db: Database, settings: Settings, slot: _Slot) -> None:
    request = slot.request
    try:
        if request.idempotency_key is not None:  # never stored unless well-formed (and never '')
            check_idempotency_key(request.idempotency_key)
        if isinstance(request.campaign, PreparedCampaign):
            slot.prepared = request.campaign
        else:
            # Local data or the geocode cache only: a name to geocode was looked up before (ensure_geocoded).
            slot.prepared = prepare_campaign(db, request.campaign, notify_url=request.notify_url, settings=settings)
        # The tier, the sources and the budget, as the quote checks them (a base campaign reads nothing).
        plan_campaign(db, settings, request.owner_id, slot.prepared, anonymous=request.anonymous)
    except Exception as exc:  # a refusal (UserError), or an error of this request alone
        slot.outcome = exc


def _database_failed(exc: Exception) -> bool:
    """The database failed (down, restarting, locked), not one request: each alone would fail the same way."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _write_each_alone(db: Database, settings: Settings, slots: Sequence[_Slot]) -> None:
    """The fallback: each request in a transaction of its own, its failure its own.

    A key raced by another API process (on PostgreSQL both looked before either
    inserted, and the unique index refused the loser) is found this time: that
    request answers with the winner's job.
    """
    down: Exception | None = None
    for slot in slots:
        if down is not None:  # the database failed meanwhile: what is left was not written
            slot.outcome = down
            continue
        try:
            _write(db, settings, [slot])
        except Exception as exc:
            slot.outcome = exc
            down = exc if _database_failed(exc) else None


def _write(db: Database, settings: Settings, slots: Sequence[_Slot]) -> None:
    """One transaction deciding each of these slots (prepared, with no outcome yet).

    If it fails, it raises and the slots are undecided again: nothing was written.
    """
    now = utcnow()
    written: list[_Slot] = []
    try:
        with db.write() as conn:
            _open_sessions(conn, slots, now)
            _find_earlier(conn, slots)
            _spend_rates(conn, slots, now)
            written = _insert(conn, settings, slots, now)
    except Exception:
        # An error once the statements ran may come with the commit done (after it, or a
        # connection lost on its answer): then each of these jobs exists and is its request's answer.
        if not (written and _committed(db, written[0])):
            for slot in slots:
                slot.undo()
            raise
        log.exception("%d submissions were committed, then an error was raised", len(written))
    for slot in slots:
        if slot.twin is not None:
            slot.outcome = _replay_of(slot.twin, slot)


def _open_sessions(conn: Connection, slots: Sequence[_Slot], now: datetime) -> None:
    """Each request without an owner opens a new anonymous session, within its address's limit."""
    anonymous = [slot for slot in slots if slot.request.owner_id is None]
    limited = [slot for slot in anonymous if slot.request.session_limit]
    limits = [slot.request.session_limit for slot in limited]
    for slot, refused in zip(limited, admit_sessions(conn, limits, now), strict=True):  # type: ignore[arg-type]
        slot.outcome = refused
    opening = [slot for slot in anonymous if slot.outcome is None]
    for slot, session in zip(opening, insert_sessions(conn, [s.request.session_label for s in opening]), strict=True):
        slot.session = session
    for slot in slots:
        if slot.outcome is None:
            slot.owner = slot.session[0].user_id if slot.session else slot.request.owner_id


def _find_earlier(conn: Connection, slots: Sequence[_Slot]) -> None:
    """An Idempotency-Key seen before answers with that job: in the store, or earlier in this group."""
    first: dict[tuple[str | None, str], _Slot] = {}
    for slot in slots:
        key = slot.request.idempotency_key
        if slot.outcome is not None or key is None:
            continue
        if (twin := first.get((slot.owner, key))) is not None:
            slot.twin = twin
            continue
        assert slot.owner is not None and slot.prepared is not None
        slot.outcome = _earlier(conn, slot.owner, key, slot.prepared.digest)
        if slot.outcome is None:
            first[(slot.owner, key)] = slot


def _spend_rates(conn: Connection, slots: Sequence[_Slot], now: datetime) -> None:
    """The owner's rate: spent by each new submission, not by an answer from an earlier one."""
    limited = [slot for slot in slots if slot.fresh and slot.request.per_minute]
    rates = [(str(slot.owner), slot.request.per_minute or 0) for slot in limited]
    for slot, refused in zip(limited, admit_submissions(conn, rates, now), strict=True):
        slot.outcome = refused


def _insert(conn: Connection, settings: Settings, slots: Sequence[_Slot], now: datetime) -> list[_Slot]:
    """The new campaigns, jobs and first events: one statement per table. Returns the slots written."""
    fresh = [slot for slot in slots if slot.fresh]
    rows = [_campaign_row(slot.owner, slot.prepared, now) for slot in fresh]  # type: ignore[arg-type]
    if rows:
        insert_campaigns(conn, rows)
    new_jobs = [
        NewJob(
            kind=CAMPAIGN,
            campaign_id=row["id"],
            owner_id=row["owner_id"],
            config=_job_config(slot.prepared),  # type: ignore[arg-type]
            max_attempts=settings.max_attempts,
            idempotency_key=slot.request.idempotency_key,
            request_hash=slot.prepared.digest,  # type: ignore[union-attr]
        )
        for slot, row in zip(fresh, rows, strict=True)
    ]
    for slot, job in zip(fresh, insert_jobs(conn, new_jobs, now), strict=True):
        assert job.campaign_id is not None  # a submission is a campaign job
        slot.outcome = Submission(job=job, campaign_id=job.campaign_id, created=True, session=slot.session)
    return fresh


def _committed(db: Database, slot: _Slot) -> bool:
    """Whether the transaction that wrote this slot's job committed after all (the job is in the store)."""
    assert isinstance(slot.outcome, Submission)
    job_id = slot.outcome.job.id
    try:
        return job_exists(db, job_id)
    except Exception:  # the database cannot tell: answer as its error says, not written
        log.warning("could not check whether job %s was committed", job_id, exc_info=True)
        return False


def _replay_of(first: _Slot, slot: _Slot) -> Outcome:
    """The answer to a request repeating the group's first one with its owner and key."""
    assert first.prepared is not None and slot.prepared is not None
    if slot.prepared.digest != first.prepared.digest:
        return Conflict("this Idempotency-Key was already used with a different request")
    if isinstance(first.outcome, Submission):
        return Submission(job=first.outcome.job, campaign_id=first.outcome.campaign_id, created=False)
    assert first.outcome is not None
    return first.outcome  # the same request, refused (or failed) as the first was


def _earlier(conn: Connection, owner_id: str, key: str, digest: str) -> Outcome | None:
    job = job_by_idempotency_key(conn, owner_id, key)
    if job is None:
        return None
    if job.request_hash != digest:
        return Conflict("this Idempotency-Key was already used with a different request")
    assert job.campaign_id is not None  # keys are only stored with campaign jobs
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
    notify = Notify(url=prepared.notify_url, secret=secrets.token_hex(32)) if prepared.notify_url else None
    return CampaignConfig(
        business_type=business_type.name,
        business_type_label=business_type.label,
        tags=tuple(business_type.tags),
        location=request.location,
        area=prepared.area,
        max_results=request.max_results,
        budget_limit=request.budget_limit,
        min_score=request.min_score,
        tier=request.tier,
        include_delivered=request.include_delivered,
        notify=notify,
        sources=parse_sources(request.sources),
    ).to_dict()
