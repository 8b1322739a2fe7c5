"""The transition table: every allowed and every forbidden pair of states."""

import itertools

import pytest

from mpr.jobs import TRANSITIONS, JobStatus, can_transition, sources_of

ALLOWED = {
    (JobStatus.PENDING, JobStatus.PROCESSING),
    (JobStatus.PROCESSING, JobStatus.COMPLETED),
    (JobStatus.PROCESSING, JobStatus.FAILED),
    (JobStatus.PENDING, JobStatus.CANCELLED),
    (JobStatus.PROCESSING, JobStatus.CANCELLED),
    (JobStatus.FAILED, JobStatus.PENDING),
}


@pytest.mark.parametrize("current,target", sorted(itertools.product(JobStatus, JobStatus)))
def test_transition_is_allowed_only_when_the_contract_lists_it(current, target):
    # Given two states / When asked whether one may follow the other / Then the contract decides
    assert can_transition(current, target) is ((current, target) in ALLOWED)


def test_final_states_have_no_way_out():
    assert TRANSITIONS[JobStatus.COMPLETED] == frozenset()
    assert TRANSITIONS[JobStatus.CANCELLED] == frozenset()


def test_sources_of_cancelled_are_pending_and_processing():
    assert sources_of(JobStatus.CANCELLED) == (JobStatus.PENDING, JobStatus.PROCESSING)
    assert sources_of(JobStatus.PENDING) == (JobStatus.FAILED,)
