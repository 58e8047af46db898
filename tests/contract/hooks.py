"""schemathesis hooks for scripts/contract.

An `Idempotency-Key` names one request: the same key with a different request is refused
with 422 by design (the answer to the first request is remembered for 24 hours). A fuzzer that
draws header values at random reuses short values ("0", "a") across different requests and
would report that deliberate refusal as "a valid request rejected". So every *valid*
Idempotency-Key schemathesis generates is made unique per call; an invalid one (empty, too
long, not visible ASCII) is left as it is, so negative testing of the header still happens.
"""

import re
import uuid

import schemathesis

VALID = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and isinstance(headers[name], str):
            if VALID.match(headers[name]):
                headers[name] = uuid.uuid4().hex
