"""Stage 4: enrich each selected candidate, concurrently, one checkpoint per candidate.

Enrichers run in threads, at most ``concurrency`` candidates at once (the
providers' own clients enforce their rate limits); results are written one
transaction per candidate as they complete, so a resumed attempt skips every
candidate already written. Cancellation is checked between candidates and
while waiting for them.

Each step has a deadline: a provider call that hangs fails the attempt (a
TimeoutError, retried like any failing step) instead of holding the job, and
its lease, forever. A thread cannot be killed, so the hung one is abandoned:
each candidate runs in its own daemon thread, which nothing ever joins (a
ThreadPoolExecutor's threads are joined at interpreter exit, so one hung call
would keep a stopping worker from exiting).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection

from prospectpro.config import Settings
from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.clock import utcnow
from prospectpro.domain.scoring import score_business
from prospectpro.domain.tiers import CONTACT_SOURCES, TIERS, money_text, tier_rule
from prospectpro.gate.errors import OverBudget, ProviderError, ProviderErrorKind
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers import hunter, neverbounce
from prospectpro.providers.osm_email import business_domain, choose, on_domain, with_emails
from prospectpro.providers.protocols import PASS_THROUGH, CallContext, Enricher, Enrichment, Gate
from prospectpro.store import suppression
from prospectpro.store.candidates import enrichment_progress, pending_enrichment, record_enrichment
from prospectpro.store.ledger import job_spent

T = TypeVar("T")
_CHECK_SECONDS = 0.5  # how often a wait for slow steps looks for a cancel or a stop


class StepClock:
    """Which step a candidate's thread is in and since when: what the step deadline measures."""

    def __init__(self) -> None:
        self.step: tuple[str, float] = ("start", time.monotonic())  # replaced whole: read without a lock

    def enter(self, name: str) -> None:
        self.step = (name, time.monotonic())


def enrich_business(
    business: Business,
    enrichers: Sequence[Enricher],
    ctx: CallContext,
    clock: StepClock | None = None,
    blocked: Blocked | None = None,
) -> Enrichment:
    found = Enrichment()
    for enricher in enrichers:
        if clock is not None:
            clock.enter(enricher.name)
        found = enricher.enrich(business, found, ctx)
        if blocked is not None:  # a suppressed address is dropped as soon as found: the next step sees the gap
            found = blocked.drop(found, ctx)
    return found


def _in_thread(fn: Callable[[], T]) -> Future[T]:
    """``fn()`` in a daemon thread of its own: if it hangs, it is abandoned, never joined."""
    future: Future[T] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting stage
            future.set_exception(exc)

    threading.Thread(target=target, name="enrich", daemon=True).start()
    return future


def run(
    run: JobRun,
    enrichers: Sequence[Enricher],
    concurrency: int,
    *,
    step_timeout: float = 120.0,
    gate: Gate = PASS_THROUGH,
) -> None:
    stage.start(run, Stage.enriching_contacts)
    job_id = run.lease.job_id
    campaign = stage.config(run)
    with run.db.read() as conn:
        todo = pending_enrichment(conn, job_id)
        blocked = Blocked(suppression.entries_set(conn))
    # The need as this attempt starts: the selected leads an earlier attempt did not enrich.
    ctx = stage.call_context(run, campaign, wanted=len(todo), gate=gate)
    steps = [bind(e, campaign.sources, blocked) for e in enrichers]
    tally = Tally.from_metrics(run.job.metrics)
    _enrich_all(run, todo, steps, ctx, concurrency, step_timeout, blocked, tally)
    with run.db.read() as conn:
        _, done, _ = enrichment_progress(conn, job_id)
        spent = job_spent(conn, job_id)  # the job's whole spend so far (discovery's too), as the ledger has it
    stage.finish(
        run,
        Stage.enriching_contacts,
        metrics={"leads_enriched": done, "total_cost": money_text(spent), **tally.final(run.job.metrics)},
    )


def _enrich_all(
    run: JobRun,
    todo: list[tuple[int, Business]],
    enrichers: Sequence[Enricher],
    ctx: CallContext,
    concurrency: int,
    step_timeout: float,
    blocked: Blocked | None = None,
    tally: Tally | None = None,
) -> None:
    blocked = blocked or Blocked(set())
    tally = tally or Tally()
    queue = deque(todo)
    before = [e for e in enrichers if not isinstance(e, VerifyStep)]
    verifier = next((e for e in enrichers if isinstance(e, VerifyStep)), None)
    running: dict[Future[Enrichment], tuple[int, Business, StepClock]] = {}
    verifying: dict[Future[Enrichment], tuple[int, Business]] = {}
    stop = threading.Event()
    batch = Verifications(verifier, ctx, stop, len(todo)) if verifier is not None else None

    def start(items: list[tuple[int, Business]]) -> None:
        for candidate_id, business in items:
            clock = StepClock()
            future = _in_thread(partial(enrich_business, business, before, ctx, clock, blocked))
            running[future] = (candidate_id, business, clock)

    def record(candidate_id: int, business: Business, found: Enrichment) -> None:
        found = finish_enrichment(found)
        tally.add(run, found)
        _record(run, candidate_id, business, found, tally)

    start(_take(queue, concurrency))
    asked = time.monotonic()
    try:
        while running or verifying:
            now = time.monotonic()
            deadlines = [clock.step[1] + step_timeout for _, _, clock in running.values()]
            timeout = max(0.0, min([*(d - now for d in deadlines), _CHECK_SECONDS]))
            completed, _ = wait([*running, *verifying], timeout=timeout, return_when=FIRST_COMPLETED)
            started = 0
            for future in completed:
                if future in running:
                    candidate_id, business, _ = running.pop(future)
                    started += 1
                    found = future.result()
                    if batch is None:
                        record(candidate_id, business, found)
                    else:
                        verifying[batch.submit(business, found)] = (candidate_id, business)
                else:
                    candidate_id, business = verifying.pop(future)
                    record(candidate_id, business, future.result())
            if batch is not None:
                if not running and not queue:
                    batch.close()
                batch.poll()
            _check_deadlines(running.values(), step_timeout)
            if time.monotonic() - asked >= _CHECK_SECONDS:  # the heartbeat sees a cancel only every few seconds
                asked = time.monotonic()
                run.cancel_requested_now()
            run.checkpoint()
            start(_take(queue, started))
            if batch is not None and not running and not verifying:
                batch.close()
    finally:
        stop.set()  # a bulk job still polled gives up (the job's next attempt polls it again)


def _check_deadlines(running: Iterable[tuple[int, Business, StepClock]], step_timeout: float) -> None:
    now = time.monotonic()
    for _, business, clock in running:
        step, since = clock.step
        if now - since > step_timeout:
            raise TimeoutError(f"enrichment step {step!r} took over {step_timeout:g}s for {business.name!r}")


def _take(queue: deque[tuple[int, Business]], n: int) -> list[tuple[int, Business]]:
    return [queue.popleft() for _ in range(min(n, len(queue)))]


def _record(
    run: JobRun, candidate_id: int, business: Business, found: Enrichment, tally: Tally | None = None
) -> None:
    score = score_business(
        business, email=found.email, email_status=found.email_status, email_on_domain=found.email_on_domain
    )
    job_id = run.lease.job_id
    claimed = [str(s["claimed"]) for s in found.steps if s.get("claimed")]

    def build(conn: Connection) -> Change:
        for address in claimed:  # Hunter 451: this person must not be processed, by anyone here
            suppression.add(conn, address, "hunter 451: the person asked not to be processed", utcnow())
        record_enrichment(
            conn,
            job_id,
            candidate_id,
            enrichment=found.to_dict(),
            score=score.total,
            breakdown=score.breakdown,
            cost=found.cost,
        )
        total, done, _ = enrichment_progress(conn, job_id)
        return Change(
            kind="lead_enriched",
            stage=Stage.enriching_contacts,
            progress=Stage.enriching_contacts.progress_at(done / total if total else 1.0),
            metrics={
                "leads_enriched": done,
                "total_cost": money_text(job_spent(conn, job_id)),
                **(tally.running() if tally is not None else {}),
            },
            data={
                "lead": {
                    "candidate_id": candidate_id,
                    "business_name": business.name,
                    "confidence_score": score.total,
                    "email_found": found.email is not None,
                    "email_status": found.email_status,
                    "email_source": found.email_source,
                },
                "done": done,
                "total": total,
            },
        )

    run.change(build)


# -- the contact waterfall (issue 11) ---------------------------------------------------------
# Per candidate, in order, stopping once a verified address on the business's own domain is in hand:
# (1) the source data's e-mail (OsmEmail), (2) the website finder, (3) Hunter's domain search,
# (4) verification — each step skipped, with its reason, when not needed, not in the tier, not
# configured, over the lead's cap, over the budget, or its provider's breaker is open.

SKIP_NOT_NEEDED = "not needed"
SKIP_TIER = "tier"
SKIP_NOT_CHOSEN = "not chosen"  # the campaign's sources leave it out
SKIP_NOT_CONFIGURED = "not configured"
SKIP_CAP = "cap"
SKIP_BUDGET = "budget"
SKIP_BREAKER = "breaker"
SKIP_QUOTA = "credits exhausted"
_BULK_FLUSH_SECONDS = 0.5  # once bulk verification has started: the longest an address waits for its batch


def contact_concurrency(settings: Settings) -> int:
    """Candidates enriched at once: enough that the providers' limits, not this pool, are the bound.

    A site takes seconds (a few pages, one at a time, with the politeness
    delay), Hunter answers in ~400 ms at 15/s (6 in flight) and NeverBounce
    in ~300 ms at 10/s: 64 candidates in flight keep both busy while sites
    load (a site's pages come one at a time, so sites are what needs the width). An explicitly configured ``enrich_concurrency`` wins.
    """
    if "enrich_concurrency" in settings.model_fields_set:
        return settings.enrich_concurrency
    return max(settings.enrich_concurrency, 64)


class Blocked:
    """The suppression list as this job sees it: loaded at the stage's start, plus Hunter's 451s meanwhile."""

    def __init__(self, entries: set[str]) -> None:
        self._entries = set(entries)
        self._lock = threading.Lock()

    def add(self, address: str) -> None:
        with self._lock:
            self._entries.add(address.lower())

    def __call__(self, address: str) -> bool:
        address = address.lower()
        with self._lock:
            return address in self._entries or address.rsplit("@", 1)[-1] in self._entries

    def drop(self, found: Enrichment, ctx: CallContext) -> Enrichment:
        """``found`` without suppressed addresses (never stored on a new lead, never verified)."""
        kept = tuple(e for e in found.emails if not self(str(e.get("address", ""))))
        if len(kept) == len(found.emails):
            return found
        person = found.contact_person
        if person and person.get("email") and self(str(person["email"])):
            person = None
        rule = TIERS[ctx.tier]
        cleared = replace(found, emails=kept, contact_person=person)
        return choose(cleared, personal=rule.personal_emails).with_step(
            "suppression", "dropped", count=len(found.emails) - len(kept)
        )


def finish_enrichment(found: Enrichment) -> Enrichment:
    """An address nobody verified is ``unverified``: never empty, never valid by default."""
    if found.email and not found.email_status:
        return replace(found, email_status="unverified")
    if not found.email:
        return replace(found, email_status=None)
    return found


@dataclass
class Tally:
    """What the contact steps skipped or failed on, over every attempt of the job (kept in its metrics)."""

    over_budget: int = 0
    budget_exhausted: bool = False
    failed: dict[str, str] = field(default_factory=dict)  # provider → reason
    announced: bool = False

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> Tally:
        kept = metrics.get("contacts") or {}
        return cls(
            over_budget=int(kept.get("over_budget") or 0),
            budget_exhausted=bool(kept.get("budget_exhausted")),
            failed=dict(kept.get("failed") or {}),
            announced=bool(kept.get("budget_exhausted")),
        )

    def add(self, run: JobRun, found: Enrichment) -> None:
        over = False
        for step in found.steps:
            if step.get("reason") == SKIP_BUDGET:
                over = True
            # One business's site being down is that lead's (its steps say so), not a failing source.
            if step.get("provider") == "website":
                continue
            if step.get("outcome") == "error" or step.get("reason") in (SKIP_BREAKER, SKIP_QUOTA):
                self.failed.setdefault(str(step["provider"]), str(step.get("detail") or step.get("reason")))
        if over:
            self.over_budget += 1
            self.budget_exhausted = True
            if not self.announced:
                self.announced = True
                run.change(Change(kind="budget_exhausted", data={"stage": Stage.enriching_contacts.value}))

    def running(self) -> dict[str, Any]:
        return {
            "contacts": {"over_budget": self.over_budget, "budget_exhausted": self.budget_exhausted,
                         "failed": dict(self.failed)}
        }

    def final(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The job's shared metric names: skipped.over_budget, budget_exhausted, failed_sources."""
        earlier_skipped = metrics.get("skipped") or {}
        earlier_failed = [f for f in metrics.get("failed_sources") or [] if f.get("source") not in self.failed]
        discovery_over = int(earlier_skipped.get("over_budget") or 0)  # the stage runs to its end once
        return {
            **self.running(),
            "skipped": {"over_budget": discovery_over + self.over_budget},
            "budget_exhausted": bool(metrics.get("budget_exhausted")) or self.budget_exhausted,
            "failed_sources": [*earlier_failed, *({"source": k, "reason": v} for k, v in self.failed.items())],
        }


def bind(enricher: Enricher, sources: Sequence[str] | None, blocked: Blocked) -> Enricher:
    """A contact step told this campaign's chosen sources and suppression list; other enrichers as they are."""
    if isinstance(enricher, WebsiteStep | HunterStep | VerifyStep):
        # As discovery reads it: sources named are all the campaign uses (none named: all its tier allows).
        chosen = tuple(s for s in sources if s in CONTACT_SOURCES) if sources is not None else None
        return replace(enricher, chosen=chosen, blocked=blocked)
    return enricher


def _skip(found: Enrichment, provider: str, reason: str, **extra: Any) -> Enrichment:
    return found.with_step(provider, "skipped", reason=reason, **extra)


def _allowed(step_source: str, ctx: CallContext, chosen: tuple[str, ...] | None) -> str | None:
    """Why the campaign does not run this source (tier, not chosen), or None."""
    if step_source not in TIERS[ctx.tier].sources:
        return SKIP_TIER
    if chosen is not None and step_source not in chosen:
        return SKIP_NOT_CHOSEN
    return None


def _verified_on_domain(found: Enrichment) -> bool:
    return bool(found.email and found.email_on_domain and found.email_status == "valid")


def _failure(found: Enrichment, provider: str, exc: ProviderError) -> Enrichment:
    if exc.kind == ProviderErrorKind.breaker_open:
        return _skip(found, provider, SKIP_BREAKER, detail=exc.reason)
    if exc.kind == ProviderErrorKind.quota_exhausted:
        return _skip(found, provider, SKIP_QUOTA, detail=exc.reason)
    return found.with_step(provider, "error", detail=exc.reason)


@dataclass
class WebsiteStep:
    """Step 2: the business's own website (providers/website.py, $0, every tier)."""

    settings: Settings
    chosen: tuple[str, ...] | None = None
    blocked: Blocked | None = None
    name: str = "website"

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        why = _allowed("website", ctx, self.chosen)
        if why is not None:
            return _skip(found, self.name, why)
        if _verified_on_domain(found):
            return _skip(found, self.name, SKIP_NOT_NEEDED)
        if not business.website:
            return _skip(found, self.name, "no website")
        try:
            from prospectpro.providers import website
        except ImportError:  # helper G's finder is not in this build
            return _skip(found, self.name, SKIP_NOT_CONFIGURED)
        try:
            site = website.find_contacts(business.website, ctx, self.settings)
        except ProviderError as exc:
            return _failure(found, self.name, exc)
        if site is None:
            return _skip(found, self.name, "no website")
        rule = TIERS[ctx.tier]
        items = [
            {"address": e.address, "source": f"website:{e.url}", "kind": e.kind, "on_domain": e.on_domain}
            for e in site.emails
            if rule.personal_emails or e.kind != "personal"
        ]
        known_phones = {p["number"] for p in found.phones}
        known_socials = {p["url"] for p in found.socials}
        found = replace(
            with_emails(found, items),
            phones=(
                *found.phones,
                *({"number": n, "source": f"website:{u}"} for n, u in dict(site.phones).items() if n not in known_phones),
            ),
            socials=(
                *found.socials,
                *({"url": s, "source": f"website:{u}"} for s, u in dict(site.socials).items() if s not in known_socials),
            ),
        )
        if rule.personal_emails and found.contact_person is None:
            person = next((e for e in site.emails if e.kind == "personal" and e.on_domain), None)
            if person is not None:
                found = replace(found, contact_person={"email": person.address, "source": f"website:{person.url}"})
        found = choose(found, personal=rule.personal_emails)
        outcome = "refused" if site.refused else ("found" if items else "none")
        extra = {"detail": site.refused} if site.refused else {}
        return found.with_step(self.name, outcome, pages=len(site.pages), emails=len(items), **extra)


_DECISION_MAKERS = ("owner", "founder", "ceo", "managing", "director", "manager", "lead", "head", "partner",
                    "omistaja", "toimitusjohtaja", "geschäftsführer", "inhaber")


@dataclass
class HunterStep:
    """Step 3: Hunter's domain search (professional and above), when the free steps found no on-domain address
    (enterprise: also when no named decision-maker is known)."""

    settings: Settings
    chosen: tuple[str, ...] | None = None
    blocked: Blocked | None = None
    name: str = "hunter"

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        why = _allowed(self.name, ctx, self.chosen)
        if why is not None:
            return _skip(found, self.name, why)
        if hunter.spec(self.settings) is None:
            return _skip(found, self.name, SKIP_NOT_CONFIGURED)
        rule = tier_rule(ctx.tier, self.settings.tier_lead_caps)
        wants_person = rule.personal_emails and found.contact_person is None
        if found.email and found.email_on_domain and not wants_person:
            return _skip(found, self.name, SKIP_NOT_NEEDED)
        domain = business_domain(business.website)
        if domain is None:
            return _skip(found, self.name, "no domain")
        if found.cost + hunter.credit_price(self.settings) > rule.lead_cap:
            return _skip(found, self.name, SKIP_CAP)
        try:
            emails, cost, reused = hunter.domain_search(ctx, self.settings, domain, personal=rule.personal_emails)
        except OverBudget:
            return _skip(found, self.name, SKIP_BUDGET)
        except ProviderError as exc:
            if exc.kind == ProviderErrorKind.forbidden:  # 451: drop what Hunter had, suppress the person named
                claimed = hunter.claimed_address(exc)
                if claimed and self.blocked is not None:
                    self.blocked.add(claimed)
                extra = {"claimed": claimed} if claimed else {}
                return found.with_step(self.name, "forbidden", detail=exc.reason, **extra)
            return _failure(found, self.name, exc)
        blocked = self.blocked or (lambda _address: False)
        kept = [e for e in emails if (rule.personal_emails or e.kind != "personal") and not blocked(e.address)]
        items = []
        for e in kept:
            item: dict[str, Any] = {
                "address": e.address,
                "source": "hunter",
                "kind": e.kind,
                "on_domain": e.address.rsplit("@", 1)[-1] == domain or on_domain(e.address, business.website),
                "confidence": e.confidence,
            }
            if e.kind == "personal":
                item.update(name=" ".join(p for p in (e.first_name, e.last_name) if p) or None, position=e.position)
            if e.verified_status == "valid":
                item["verified"] = {"by": "hunter", "result": "valid", "on": e.verified_on}
            items.append(item)
        found = with_emails(replace(found, cost=found.cost + cost), items)
        if wants_person:
            person = _decision_maker(kept)
            if person is not None:
                found = replace(
                    found,
                    contact_person={
                        "email": person.address,
                        "name": " ".join(p for p in (person.first_name, person.last_name) if p) or None,
                        "position": person.position,
                        "source": "hunter",
                    },
                )
        found = choose(found, personal=rule.personal_emails)
        return found.with_step(
            self.name, "found" if items else "none", cost=money_text(cost), reused=reused, emails=len(items)
        )


def _decision_maker(emails: Sequence[hunter.HunterEmail]) -> hunter.HunterEmail | None:
    people = [e for e in emails if e.kind == "personal" and (e.first_name or e.last_name)]
    ranked = [
        e
        for e in people
        if (e.seniority or "").lower() == "executive"
        or any(word in (e.position or "").lower() for word in _DECISION_MAKERS)
    ]
    return (ranked or [None])[0]  # type: ignore[list-item]


@dataclass
class VerifyStep:
    """Step 4: verification of the chosen address (professional and above): NeverBounce, or Hunter's verifier
    when only Hunter is configured. Many addresses in one campaign go through NeverBounce's bulk jobs."""

    settings: Settings
    chosen: tuple[str, ...] | None = None
    blocked: Blocked | None = None
    name: str = "verify"

    def provider(self, ctx: CallContext) -> str | None:
        if neverbounce.spec(self.settings) is not None and _allowed("neverbounce", ctx, self.chosen) is None:
            return "neverbounce"
        if hunter.spec(self.settings) is not None and _allowed("hunter", ctx, self.chosen) is None:
            return "hunter"
        return None

    def price(self, provider: str) -> Decimal:
        if provider == "neverbounce":
            return neverbounce.verification_price(self.settings)
        return hunter.credit_price(self.settings) * hunter.VERIFIER_CREDITS

    def decide(self, business: Business, found: Enrichment, ctx: CallContext) -> tuple[Enrichment, str | None]:
        """``found`` with the skip recorded, or (found, the provider to verify it with)."""
        if found.email is None:
            return _skip(found, self.name, "no email"), None
        if _allowed("neverbounce", ctx, None) is not None:
            return _skip(found, self.name, SKIP_TIER), None
        if found.email_status == "valid":  # Hunter verified it recently enough
            return _skip(found, self.name, SKIP_NOT_NEEDED, by=(found.verification or {}).get("by")), None
        if self.blocked is not None and self.blocked(found.email):
            return _skip(found, self.name, "suppressed"), None
        provider = self.provider(ctx)
        if provider is None:
            return _skip(found, self.name, SKIP_NOT_CONFIGURED), None
        cap = tier_rule(ctx.tier, self.settings.tier_lead_caps).lead_cap
        if found.cost + self.price(provider) > cap:
            return _skip(found, self.name, SKIP_CAP, via=provider), None
        return found, provider

    def apply(
        self, found: Enrichment, provider: str, status: str, cost: Decimal, reused: bool, **extra: Any
    ) -> Enrichment:
        return replace(
            found,
            email_status=status,
            cost=found.cost + cost,
            verification={"by": provider, "result": status, "on": utcnow().date().isoformat()},
        ).with_step(
            self.name, "verified", via=provider, result=status, cost=money_text(cost), reused=reused, **extra
        )

    def single(self, found: Enrichment, provider: str, ctx: CallContext) -> Enrichment:
        address = found.email
        assert address is not None
        try:
            if provider == "neverbounce":
                status, cost, reused = neverbounce.check(ctx, self.settings, address)
            else:
                status, cost = hunter.verify(ctx, self.settings, address)
                reused = False
        except OverBudget:
            return _skip(found, self.name, SKIP_BUDGET, via=provider)
        except ProviderError as exc:
            if exc.kind == ProviderErrorKind.forbidden:
                if self.blocked is not None:
                    self.blocked.add(address)
                cleared = replace(found, emails=tuple(e for e in found.emails if e.get("address") != address))
                cleared = choose(cleared, personal=TIERS[ctx.tier].personal_emails)
                return cleared.with_step(self.name, "forbidden", via=provider, detail=exc.reason, claimed=address)
            failed = _failure(found, provider, exc)
            return failed
        return self.apply(found, provider, status, cost, reused)

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        found, provider = self.decide(business, found, ctx)
        found = found if provider is None else self.single(found, provider, ctx)
        return self.verify_person(found, ctx)

    def enrich_found(self, found: Enrichment, provider: str, ctx: CallContext) -> Enrichment:
        return self.verify_person(self.single(found, provider, ctx), ctx)

    def verify_person(self, found: Enrichment, ctx: CallContext) -> Enrichment:
        """Enterprise: the named decision-maker's address is verified too (one check, within the lead's cap)."""
        person = found.contact_person
        address = (person or {}).get("email")
        if not person or not address or person.get("email_status") or address == found.email:
            return found
        if not TIERS[ctx.tier].personal_emails or (self.blocked is not None and self.blocked(str(address))):
            return found
        provider = self.provider(ctx)
        if provider is None:
            return found
        if found.cost + self.price(provider) > tier_rule(ctx.tier, self.settings.tier_lead_caps).lead_cap:
            return _skip(found, "verify_person", SKIP_CAP, via=provider)
        checked = self.single(replace(found, email=str(address), email_status=None), provider, ctx)
        if any(step.get("outcome") == "forbidden" for step in checked.steps[len(found.steps):]):
            return replace(found, cost=checked.cost, steps=checked.steps, contact_person=None)  # 451: dropped
        status = checked.email_status or "unverified"
        return replace(found, cost=checked.cost, steps=checked.steps, contact_person={**person, "email_status": status})


class Verifications:
    """Step 4 for the whole job: one check per address, or NeverBounce's bulk jobs when the campaign has more
    than ``neverbounce_bulk_min`` leads to verify (NeverBounce asks that lists not loop through single/check).

    Decided when the stage starts, from the candidates it enriches (each has one address to verify at most),
    so verification overlaps the other steps instead of waiting for the last lead: addresses are sent in
    batches as they arrive (one at most ``_BULK_FLUSH_SECONDS`` old, or over the minimum, or the last ones).
    ``submit`` returns the candidate's future at once, so waiting for a batch never holds an enrichment slot.
    """

    def __init__(self, step: VerifyStep, ctx: CallContext, stop: threading.Event, expected: int) -> None:
        self.step = step
        self.ctx = ctx
        self.stop = stop
        self.bulk_min = step.settings.neverbounce_bulk_min
        self.bulk = expected > self.bulk_min
        self._pending: list[tuple[Enrichment, Future[Enrichment], float]] = []
        self._closed = False

    def submit(self, business: Business, found: Enrichment) -> Future[Enrichment]:
        found, provider = self.step.decide(business, found, self.ctx)
        if provider is None:
            if found.contact_person and TIERS[self.ctx.tier].personal_emails:
                return _in_thread(partial(self.step.verify_person, found, self.ctx))
            done: Future[Enrichment] = Future()
            done.set_result(found)
            return done
        if provider != "neverbounce" or not self.bulk:
            return _in_thread(partial(self.step.enrich_found, found, provider, self.ctx))
        future: Future[Enrichment] = Future()
        self._pending.append((found, future, time.monotonic()))
        return future

    def close(self) -> None:
        self._closed = True

    def poll(self) -> None:
        """Send the pending batch when it is due."""
        if not self._pending:
            return
        aged = time.monotonic() - self._pending[0][2] >= _BULK_FLUSH_SECONDS
        if self._closed or aged or len(self._pending) > self.bulk_min:
            batch, self._pending = self._pending, []
            _in_thread(partial(self._run_bulk, batch))

    def _run_bulk(self, batch: list[tuple[Enrichment, Future[Enrichment], float]]) -> None:
        addresses = sorted({str(found.email) for found, _, _ in batch})
        try:
            results, total = neverbounce.bulk_check(
                self.ctx, self.step.settings, addresses, should_stop=self.stop.is_set
            )
        except (OverBudget, ProviderError) as exc:
            # The whole batch would cross the budget, or the bulk API failed: each address on its own,
            # so the budget stops exactly where it runs out (and a breaker or error is recorded per lead).
            log_reason = exc.reason if isinstance(exc, ProviderError) else "over budget"
            for found, future, _ in batch:
                noted = found.with_step(self.step.name, "bulk_failed", via="neverbounce", detail=log_reason)
                _chain(future, _in_thread(partial(self.step.single, noted, "neverbounce", self.ctx)))
            return
        share = total / len(addresses)  # what the job paid for the batch, per address (0 when reused)
        for found, future, _ in batch:
            status = results.get(str(found.email), "unknown")
            verified = self.step.apply(found, "neverbounce", status, share, total == 0, bulk=len(addresses))
            if verified.contact_person and TIERS[self.ctx.tier].personal_emails:
                _chain(future, _in_thread(partial(self.step.verify_person, verified, self.ctx)))
            else:
                future.set_result(verified)


def _chain(target: Future[T], source: Future[T]) -> None:
    def copy(done: Future[T]) -> None:
        exc = done.exception()
        if exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)
