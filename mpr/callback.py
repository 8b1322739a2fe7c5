"""The lambda executor's callback: per-attempt credentials, signing and verifying. Pure (hmac only).

The API holds one master key. For each attempt it derives a token, HMAC(master, job id and attempt),
and hands only that token to the execution. Each callback is signed with the token over
timestamp, nonce and body, so a token can report for one attempt of one job and nothing else.
The server refuses a bad signature, a timestamp outside the window, and a nonce it has seen before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from mpr.errors import UnauthorizedError

HEADER_TIMESTAMP = "X-Mpr-Timestamp"
HEADER_NONCE = "X-Mpr-Nonce"
HEADER_SIGNATURE = "X-Mpr-Signature"
SIGNATURE_VERSION = "v1"
WINDOW_SECONDS = 300
EVENTS = ("started", "progress", "completed", "failed")


def attempt_token(master_key: str, job_id: str, attempt: int) -> str:
    message = f"mpr-callback:{job_id}:{attempt}".encode()
    return hmac.new(master_key.encode(), message, hashlib.sha256).hexdigest()


def signature(token: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + nonce.encode() + b"." + body
    return f"{SIGNATURE_VERSION}={hmac.new(token.encode(), message, hashlib.sha256).hexdigest()}"


def signed_headers(token: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(token, timestamp, nonce, body),
        "Content-Type": "application/json",
    }


@dataclass(frozen=True)
class CallbackReport:
    job_id: str
    attempt: int
    event: str
    progress: int = 0
    result: dict | None = None
    error: str | None = None
    runner: str | None = None
    nonce: str = ""
    timestamp: int = 0


def _header(headers: dict[str, str], name: str) -> str:
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    value = lowered.get(name.lower(), "")
    if not value:
        raise UnauthorizedError(f"callback is missing the {name} header")
    return value


def verify(master_key: str, job_id: str, headers: dict[str, str], body: bytes,
           now: float | None = None) -> CallbackReport:
    """The report, if it is signed for this job's attempt and fresh; UnauthorizedError otherwise."""
    timestamp = _header(headers, HEADER_TIMESTAMP)
    nonce = _header(headers, HEADER_NONCE)
    given = _header(headers, HEADER_SIGNATURE)
    try:
        payload = json.loads(body or b"{}")
        attempt = int(payload["attempt"])
        moment = int(timestamp)
    except (ValueError, KeyError, TypeError):
        raise UnauthorizedError("callback is not a signed MPR report") from None
    expected = signature(attempt_token(master_key, job_id, attempt), timestamp, nonce, body)
    if not hmac.compare_digest(expected, given):
        raise UnauthorizedError("callback signature does not match this job")
    current = time.time() if now is None else now
    if abs(current - moment) > WINDOW_SECONDS:
        raise UnauthorizedError("callback timestamp is outside the accepted window")
    event = payload.get("event")
    if event not in EVENTS:
        raise UnauthorizedError("callback event is not one MPR sends")
    return CallbackReport(
        job_id=job_id, attempt=attempt, event=event, progress=int(payload.get("progress") or 0),
        result=payload.get("result"), error=payload.get("error"), runner=payload.get("runner"), nonce=nonce,
        timestamp=moment,
    )


def report_body(attempt: int, event: str, **fields) -> bytes:
    return json.dumps({"attempt": attempt, "event": event, **fields}, separators=(",", ":")).encode()
