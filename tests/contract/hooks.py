"""schemathesis hooks for scripts/contract: constraints of Keygate's contract that JSON Schema
cannot state, applied to the requests schemathesis generates so that a schema-valid request
stays valid by those rules too. Invalid values are left alone, so negative testing still
reaches the server.

- An `Idempotency-Key` names one request: the same key with a different request is refused
  with 422 by design (the first answer is remembered for 24 hours). A fuzzer reuses short
  values ("0", "a") across different requests and would report that deliberate refusal as "a
  valid request rejected", so every valid key is made unique per call.
- `expires_at` must lie in the future (a key that expired before it was made is a mistake,
  refused with 400). A valid date-time in the past is moved forward by the same distance past
  now.
"""

import re
import uuid
from datetime import datetime, timedelta, timezone

import schemathesis

VALID_IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")


def unique_idempotency_key(case):
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str):
            if VALID_IDEMPOTENCY_KEY.match(value):
                headers[name] = uuid.uuid4().hex


def future_expiry(case):
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("expires_at"), str):
        return
    try:
        when = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return
    if when.tzinfo is None:
        return
    now = datetime.now(timezone.utc)
    if when <= now:
        try:
            future = now + (now - when) + timedelta(days=1)
        except OverflowError:
            future = now + timedelta(days=365)
        if future.year > 9999:
            future = now + timedelta(days=365)
        body["expires_at"] = future.isoformat().replace("+00:00", "Z")


@schemathesis.hook
def before_call(context, case, kwargs):
    unique_idempotency_key(case)
    future_expiry(case)
