"""The rule of deletion, proved over generated recordings with hypothesis."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from evidence_locker.config import Settings
from evidence_locker.lifecycle.rules import (
    CASE_CLOSED,
    DISPOSE,
    FIXED,
    NEXT_REVIEW_MAX_DAYS,
    NEXT_REVIEW_MIN_DAYS,
    RETAIN,
    REVIEW,
    CaseFacts,
    Category,
    FlagFacts,
    HoldFacts,
    Policy,
    RecordingFacts,
    deadline,
    delete_after,
    flag_deadline,
    let_go,
    may_delete,
    review_conflict,
    review_due,
    review_refusal,
    shortens,
    subject_told_refusal,
    unflagged_deadline,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
times = st.integers(min_value=0, max_value=3 * 365 * 24).map(lambda h: T0 + dt.timedelta(hours=h))
maybe_times = st.none() | times
policies = st.builds(Policy, unflagged_days=st.integers(1, 400),
                     review_window_days=st.integers(0, 60))
flags = st.builds(FlagFacts, kind=st.sampled_from([FIXED, REVIEW, CASE_CLOSED]),
                  days=st.integers(0, 3650), withdrawn_at=maybe_times, disposed_at=maybe_times,
                  case_closed_at=maybe_times, review_at=maybe_times)
holds = st.builds(HoldFacts, released_at=maybe_times)
cases = st.builds(CaseFacts, closed_at=maybe_times)
recordings = st.builds(RecordingFacts, recorded_at=times, received_at=times,
                       flags=st.lists(flags, max_size=4).map(tuple),
                       holds=st.lists(holds, max_size=3).map(tuple),
                       cases=st.lists(cases, max_size=2).map(tuple),
                       unlinked_at=st.lists(times, max_size=2).map(tuple))


def later_or_equal(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """a keeps at least as long as b (None: indefinitely)."""
    return a is None or (b is not None and a >= b)


@given(policies, recordings, times)
def test_nothing_held_is_deleted(policy: Policy, facts: RecordingFacts, now: dt.datetime) -> None:
    if any(h.released_at is None for h in facts.holds) or any(c.open for c in facts.cases):
        assert not may_delete(policy, facts, now)
        assert delete_after(policy, facts) is None


@given(policies, recordings, times)
def test_nothing_before_any_deadline(policy: Policy, facts: RecordingFacts,
                                     now: dt.datetime) -> None:
    if may_delete(policy, facts, now):
        assert unflagged_deadline(policy, recorded_at=facts.recorded_at,
                                  received_at=facts.received_at) <= now
        for flag in facts.flags:
            d = flag_deadline(policy, flag, recorded_at=facts.recorded_at)
            assert d is not None and d <= now
            if flag.withdrawn_at is not None:
                assert flag.withdrawn_at + dt.timedelta(days=policy.review_window_days) <= now
        # Released holds, closed cases and removals from cases: a review window each.
        for when in let_go(facts):
            assert when + dt.timedelta(days=policy.review_window_days) <= now


@given(policies, recordings, times)
def test_unflagged_footage_goes_on_time(policy: Policy, facts: RecordingFacts,
                                        now: dt.datetime) -> None:
    bare = RecordingFacts(recorded_at=facts.recorded_at, received_at=facts.received_at)
    due = unflagged_deadline(policy, recorded_at=facts.recorded_at, received_at=facts.received_at)
    assert may_delete(policy, bare, now) == (due <= now)
    assert due >= facts.received_at + dt.timedelta(days=policy.review_window_days)


@given(policies, recordings, flags, holds, times)
def test_deadline_is_monotone_in_flags_and_holds(policy: Policy, facts: RecordingFacts,
                                                 flag: FlagFacts, hold: HoldFacts,
                                                 now: dt.datetime) -> None:
    more_flags = replace(facts, flags=(*facts.flags, flag))
    more_holds = replace(facts, holds=(*facts.holds, hold))
    assert later_or_equal(deadline(policy, more_flags), deadline(policy, facts))
    if hold.active:  # an active hold is not a deadline: it stops deletion (`held`)
        assert deadline(policy, more_holds) == deadline(policy, facts)
    else:
        assert later_or_equal(deadline(policy, more_holds), deadline(policy, facts))
    for more in (more_flags, more_holds):
        assert not (may_delete(policy, more, now) and not may_delete(policy, facts, now))


@given(policies, recordings, st.integers(0, 3650), times)
def test_withdrawal_never_below_review_window(policy: Policy, facts: RecordingFacts, days: int,
                                              withdrawn: dt.datetime) -> None:
    flag = FlagFacts(kind=FIXED, days=days, withdrawn_at=withdrawn)
    after = replace(facts, flags=(*facts.flags, flag))
    d = deadline(policy, after)
    assert later_or_equal(d, withdrawn + dt.timedelta(days=policy.review_window_days))


@given(policies, recordings, times, st.sampled_from(["hold released", "case closed",
                                                     "removed from case"]))
def test_letting_go_never_below_review_window(policy: Policy, facts: RecordingFacts,
                                              when: dt.datetime, how: str) -> None:
    """Whatever stopped keeping a recording, it is kept a review window more, so that it shows
    on the due list for those who relied on the hold or case to flag it in time."""
    holds, cases, unlinked = facts.holds, facts.cases, facts.unlinked_at
    if how == "hold released":
        holds = (*holds, HoldFacts(released_at=when))
    elif how == "case closed":
        cases = (*cases, CaseFacts(closed_at=when))
    else:
        unlinked = (*unlinked, when)
    after = replace(facts, holds=holds, cases=cases, unlinked_at=unlinked)
    assert later_or_equal(deadline(policy, after),
                          when + dt.timedelta(days=policy.review_window_days))
    assert later_or_equal(deadline(policy, after), deadline(policy, facts))


def test_several_categories_keep_the_longest() -> None:
    policy = Policy()
    facts = RecordingFacts(T0, T0, (FlagFacts(FIXED, 365), FlagFacts(FIXED, 3 * 365)))
    assert deadline(policy, facts) == T0 + dt.timedelta(days=3 * 365)


def test_late_arrival_gets_the_review_window() -> None:
    policy = Policy(unflagged_days=31, review_window_days=7)
    received = T0 + dt.timedelta(days=60)
    assert unflagged_deadline(policy, recorded_at=T0, received_at=received) == (
        received + dt.timedelta(days=7))
    assert unflagged_deadline(policy, recorded_at=T0, received_at=T0) == T0 + dt.timedelta(days=31)


def test_review_and_case_rules_keep_until_their_event() -> None:
    policy = Policy()
    review = FlagFacts(REVIEW, 365)
    assert deadline(policy, RecordingFacts(T0, T0, (review,))) is None
    disposed = FlagFacts(REVIEW, 365, disposed_at=T0 + dt.timedelta(days=400))
    assert deadline(policy, RecordingFacts(T0, T0, (disposed,))) == T0 + dt.timedelta(days=400)
    case = FlagFacts(CASE_CLOSED, 30, case_closed_at=T0 + dt.timedelta(days=100))
    assert deadline(policy, RecordingFacts(T0, T0, (case,))) == T0 + dt.timedelta(days=130)


def test_shortening_a_category() -> None:
    assert shortens(Category("a", FIXED, 365), Category("a", FIXED, 300))
    assert not shortens(Category("a", FIXED, 365), Category("a", FIXED, 400))
    assert not shortens(Category("a", FIXED, 365), Category("a", REVIEW, 1))
    assert shortens(Category("a", REVIEW, 365), Category("a", FIXED, 5000))
    assert shortens(Category("a", REVIEW, 365), Category("a", CASE_CLOSED, 5000))


categories = st.builds(Category, name=st.just("c"),
                       kind=st.sampled_from([FIXED, REVIEW, CASE_CLOSED]),
                       days=st.integers(0, 3650))


@given(policies, categories, categories, times, times, maybe_times)
def test_a_change_that_does_not_shorten_brings_no_deletion_forward(
        policy: Policy, old: Category, new: Category, recorded: dt.datetime,
        received: dt.datetime, event: dt.datetime | None) -> None:
    """What `locker retention categories apply` lets through without a decision can only keep
    flagged footage longer (a recorded dispose decision or a case closing is a person's act,
    so it applies under either rule when the kinds agree)."""
    if shortens(old, new):
        return
    if old.kind != new.kind:
        event = None  # the new rule waits for an event that has not happened under it
    before = RecordingFacts(recorded, received, (FlagFacts(old.kind, old.days, None, event,
                                                           event),))
    after = RecordingFacts(recorded, received, (FlagFacts(new.kind, new.days, None, event,
                                                          event),))
    assert later_or_equal(deadline(policy, after), deadline(policy, before))


def test_settings_refuse_bad_retention_configuration(tmp_path) -> None:
    with pytest.raises(ValidationError, match="regular expression"):
        Settings(data_dir=tmp_path, retention_reference_pattern="([")
    twice = [{"name": "a", "kind": "fixed", "days": 1}, {"name": "a", "kind": "review", "days": 2}]
    with pytest.raises(ValidationError, match="unique"):
        Settings(data_dir=tmp_path, retention_categories=twice)
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, retention_categories=[{"name": "a", "kind": "x", "days": 1}])


# --- review decisions ------------------------------------------------------------------------

review_flags = st.builds(FlagFacts, kind=st.just(REVIEW), days=st.integers(0, 3650),
                         review_at=maybe_times)


def _with(facts: RecordingFacts, i: int, flag: FlagFacts) -> RecordingFacts:
    flags = list(facts.flags)
    flags[i % len(flags)] = flag
    return replace(facts, flags=tuple(flags))


@given(policies, recordings, st.integers(0, 3), times, times)
def test_a_retain_never_brings_deletion_forward(policy: Policy, facts: RecordingFacts, i: int,
                                                next_review: dt.datetime,
                                                now: dt.datetime) -> None:
    """A retain decision moves a flag's review date to its next review: whatever else is
    recorded (even a dispose), the recording is kept at least as long as without it."""
    if not facts.flags:
        return
    old = facts.flags[i % len(facts.flags)]
    moved = max(old.review_at, next_review) if old.review_at else next_review
    after = _with(facts, i, FlagFacts(old.kind, old.days, old.withdrawn_at, old.disposed_at,
                                      old.case_closed_at, moved))
    assert later_or_equal(deadline(policy, after), deadline(policy, facts))
    assert not (may_delete(policy, after, now) and not may_delete(policy, facts, now))


@given(policies, recordings, review_flags, times)
def test_a_review_flag_keeps_until_a_dispose(policy: Policy, facts: RecordingFacts,
                                             flag: FlagFacts, now: dt.datetime) -> None:
    """Reviewed or not, retained any number of times: without a dispose decision nothing is
    deleted."""
    kept = replace(facts, flags=(*facts.flags, flag))
    assert not may_delete(policy, kept, now)
    assert delete_after(policy, kept) is None


@given(policies, recordings, times)
def test_nothing_goes_before_its_review_date(policy: Policy, facts: RecordingFacts,
                                            now: dt.datetime) -> None:
    if not may_delete(policy, facts, now):
        return
    for flag in facts.flags:
        due = review_due(flag, recorded_at=facts.recorded_at)
        if due is not None:
            assert flag.disposed_at is not None and flag.disposed_at <= now and due <= now


@given(policies, review_flags, times, times, times)
def test_a_dispose_never_counts_before_the_review_date(policy: Policy, flag: FlagFacts,
                                                       recorded: dt.datetime,
                                                       disposed: dt.datetime,
                                                       now: dt.datetime) -> None:
    """Even a dispose recorded before the review date (the service refuses one; a retain may
    have moved the date since) lets nothing go before that date."""
    flag = FlagFacts(flag.kind, flag.days, disposed_at=disposed, review_at=flag.review_at)
    due = review_due(flag, recorded_at=recorded)
    assert due is not None
    d = flag_deadline(policy, flag, recorded_at=recorded)
    assert d is not None and d >= due and d >= disposed
    if may_delete(policy, RecordingFacts(recorded, recorded, (flag,)), now):
        assert now >= due


@given(review_flags, times, times)
def test_decisions_are_taken_at_review(flag: FlagFacts, recorded: dt.datetime,
                                       now: dt.datetime) -> None:
    """A review decision (retain or dispose) is refused before the review date and allowed from
    it; a dispose taken then lets the flag go at once (its deadline is the decision)."""
    due = review_due(flag, recorded_at=recorded)
    assert due is not None and due >= recorded + dt.timedelta(days=flag.days)
    refused = review_conflict(flag, recorded_at=recorded, now=now)
    assert (refused is None) == (now >= due)
    if refused is None:
        disposed = FlagFacts(flag.kind, flag.days, disposed_at=now, review_at=flag.review_at)
        assert flag_deadline(Policy(), disposed, recorded_at=recorded) == now
        assert review_conflict(disposed, recorded_at=recorded, now=now) is not None


def test_review_decisions_refused_on_other_flags() -> None:
    assert review_conflict(FlagFacts(FIXED, 10), recorded_at=T0, now=T0 + dt.timedelta(999))
    withdrawn = FlagFacts(REVIEW, 10, withdrawn_at=T0)
    assert review_conflict(withdrawn, recorded_at=T0, now=T0 + dt.timedelta(999))
    assert review_due(withdrawn, recorded_at=T0) is None
    retained = FlagFacts(REVIEW, 10, review_at=T0 + dt.timedelta(days=400))
    assert review_due(retained, recorded_at=T0) == T0 + dt.timedelta(days=400)
    assert "not due" in (review_conflict(retained, recorded_at=T0,
                                         now=T0 + dt.timedelta(days=399)) or "")


def test_review_decision_input() -> None:
    assert review_refusal(RETAIN, NEXT_REVIEW_MIN_DAYS) is None
    assert review_refusal(RETAIN, NEXT_REVIEW_MAX_DAYS) is None
    assert review_refusal(DISPOSE, None) is None
    for bad in ((RETAIN, None), (RETAIN, NEXT_REVIEW_MIN_DAYS - 1),
                (RETAIN, NEXT_REVIEW_MAX_DAYS + 1), (DISPOSE, 365), ("keep", 365)):
        assert review_refusal(*bad) is not None, bad


def test_subject_told_input() -> None:
    assert subject_told_refusal("yes", "") is None
    assert subject_told_refusal("no", "subject was asleep in the cell") is None
    assert subject_told_refusal("not-practicable", "") is not None
    assert subject_told_refusal("no", "") is not None
    assert subject_told_refusal("maybe", "x" * 20) is not None
