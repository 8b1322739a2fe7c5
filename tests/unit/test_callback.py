"""The lambda executor's callback credentials: what mpr.callback accepts and what it refuses."""

from __future__ import annotations

import pytest

from mpr.callback import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WINDOW_SECONDS,
    attempt_token,
    report_body,
    signed_headers,
    verify,
)
from mpr.errors import UnauthorizedError

MASTER_KEY = "master-key-for-tests"
JOB_ID = "01JD6Q8W3E5R7T9Y1U3I5O7P9A"
OTHER_JOB_ID = "01JD6Q8W3E5R7T9Y1U3I5O7P9B"
NOW = 1_800_000_000.0


def signed(body: bytes, job_id: str = JOB_ID, attempt: int = 1, now: float = NOW,
           key: str = MASTER_KEY) -> dict[str, str]:
    return signed_headers(attempt_token(key, job_id, attempt), body, now=now)


def test_a_report_signed_with_the_attempts_token_verifies():
    # Given a progress report signed with the token of attempt 2 of the job
    body = report_body(2, "progress", progress=40)
    headers = signed(body, attempt=2)

    # When the API verifies it
    report = verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)

    # Then it gets the report, with the nonce and timestamp it was signed with
    assert (report.job_id, report.attempt, report.event, report.progress) == (JOB_ID, 2, "progress", 40)
    assert report.nonce == headers[HEADER_NONCE]
    assert report.timestamp == int(NOW)


def test_header_names_are_matched_without_regard_to_case():
    body = report_body(1, "started")
    headers = {name.lower(): value for name, value in signed(body).items()}

    assert verify(MASTER_KEY, JOB_ID, headers, body, now=NOW).event == "started"


def test_tokens_differ_per_job_and_per_attempt():
    tokens = {attempt_token(MASTER_KEY, job, attempt) for job in (JOB_ID, OTHER_JOB_ID) for attempt in (1, 2)}

    assert len(tokens) == 4
    assert MASTER_KEY not in "".join(tokens)


def test_a_forged_signature_is_refused():
    body = report_body(1, "completed", result={"size": 1})
    headers = {**signed(body), HEADER_SIGNATURE: "v1=" + "0" * 64}

    with pytest.raises(UnauthorizedError, match="signature"):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


def test_a_report_signed_under_another_master_key_is_refused():
    body = report_body(1, "completed", result={"size": 1})

    with pytest.raises(UnauthorizedError, match="signature"):
        verify(MASTER_KEY, JOB_ID, signed(body, key="some-other-key"), body, now=NOW)


def test_a_body_changed_after_signing_is_refused():
    headers = signed(report_body(1, "progress", progress=10))

    with pytest.raises(UnauthorizedError, match="signature"):
        verify(MASTER_KEY, JOB_ID, headers, report_body(1, "progress", progress=90), now=NOW)


def test_a_token_signed_for_another_job_is_refused():
    # Given a report signed with the token of another job
    body = report_body(1, "failed", error="boom")
    headers = signed(body, job_id=OTHER_JOB_ID)

    # When it is posted to this job's callback / Then it is refused
    with pytest.raises(UnauthorizedError, match="signature"):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


def test_a_token_of_another_attempt_is_refused():
    # Given the token of attempt 1, used to report for attempt 2 after a retry
    body = report_body(2, "started")
    headers = signed(body, attempt=1)

    with pytest.raises(UnauthorizedError, match="signature"):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


@pytest.mark.parametrize("skew", [-WINDOW_SECONDS - 1, WINDOW_SECONDS + 1, -3600, 3600])
def test_a_timestamp_outside_the_window_is_refused(skew):
    body = report_body(1, "started")
    headers = signed(body, now=NOW + skew)

    with pytest.raises(UnauthorizedError, match="window"):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


@pytest.mark.parametrize("skew", [-WINDOW_SECONDS, WINDOW_SECONDS])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew):
    body = report_body(1, "started")

    assert verify(MASTER_KEY, JOB_ID, signed(body, now=NOW + skew), body, now=NOW).event == "started"


@pytest.mark.parametrize("missing", [HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE])
def test_a_missing_header_is_refused(missing):
    body = report_body(1, "started")
    headers = {name: value for name, value in signed(body).items() if name != missing}

    with pytest.raises(UnauthorizedError, match=missing):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


def test_no_headers_at_all_are_refused():
    with pytest.raises(UnauthorizedError):
        verify(MASTER_KEY, JOB_ID, {}, report_body(1, "started"), now=NOW)


def test_an_unknown_event_is_refused_even_when_signed():
    body = report_body(1, "deleted")

    with pytest.raises(UnauthorizedError, match="event"):
        verify(MASTER_KEY, JOB_ID, signed(body), body, now=NOW)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"event": "started"}', b'{"attempt": "x"}'])
def test_a_body_that_is_not_a_report_is_refused(body):
    with pytest.raises(UnauthorizedError, match="not a signed MPR report"):
        verify(MASTER_KEY, JOB_ID, signed(body), body, now=NOW)


def test_a_timestamp_that_is_not_a_number_is_refused():
    body = report_body(1, "started")
    headers = {**signed(body), HEADER_TIMESTAMP: "yesterday"}

    with pytest.raises(UnauthorizedError):
        verify(MASTER_KEY, JOB_ID, headers, body, now=NOW)


def test_each_signing_uses_a_new_nonce():
    body = report_body(1, "progress", progress=5)

    nonces = {signed(body)[HEADER_NONCE] for _ in range(20)}

    assert len(nonces) == 20


def test_execution_arn_follows_the_state_machine_arn():
    from mpr.dispatch import execution_arn

    machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:mpr-pipeline"

    assert execution_arn(machine, "JOB-2") == "arn:aws:states:eu-west-1:123456789012:execution:mpr-pipeline:JOB-2"
