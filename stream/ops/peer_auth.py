"""Signatures for profile requests one worker forwards to another, so the token stays put.

A forwarded request carries `<unix time>:<HMAC-SHA256(token, method, path, time)>` instead of
the caller's bearer token: whoever sees it between pods can neither reuse the token elsewhere
nor replay the request after a short window. Every worker of a deployment shares the token.
"""

from __future__ import annotations

import hashlib
import hmac

PEER_SIGNATURE_HEADER = "X-Loyalty-Peer-Signature"
VALID_FOR_SECONDS = 30.0


def _digest(token: str, method: str, path: str, issued: int) -> str:
    message = f"{method.upper()}\n{path}\n{issued}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def sign(token: str, method: str, path: str, *, now: float) -> str:
    """The signature header value for a request issued at `now` (unix seconds)."""
    issued = int(now)
    return f"{issued}:{_digest(token, method, path, issued)}"


def verify(token: str, method: str, path: str, signature: str, *, now: float) -> bool:
    """Whether `signature` was made with `token` for this request, within the validity window."""
    issued_text, sep, digest = signature.partition(":")
    if not sep or not issued_text.isdigit():
        return False
    issued = int(issued_text)
    if abs(now - issued) > VALID_FOR_SECONDS:
        return False
    return hmac.compare_digest(digest, _digest(token, method, path, issued))
