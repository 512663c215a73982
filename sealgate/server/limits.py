"""Rate limits on every credential check and on every mail a visitor can make us send.
Counters live in the process by default, or in Redis (portal.rate_limit_storage) so that
several server hosts share them. Lockout of an account is separate (vault/accounts.py)."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, strategy="fixed-window")

# Guesses of passwords, codes and answers, per client address.
CREDENTIALS = "10 per minute;100 per hour"
# Mail we send on a visitor's request (codes, links), per client and per mailbox.
MAIL = "5 per minute;30 per hour"
MAIL_PER_MAILBOX = "5 per 15 minutes"


def mailbox_key() -> str:
    return "mailbox:" + str(request.form.get("address", "")).strip().lower()
