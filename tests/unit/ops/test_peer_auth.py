from __future__ import annotations

from stream.ops.peer_auth import VALID_FOR_SECONDS, sign, verify

TOKEN = "profile-token-3b9"
PATH = "/profiles/7294851236742"


def test_peer_signature_verifies_for_the_same_request_within_the_window():
    signature = sign(TOKEN, "GET", PATH, now=1_000_000.0)
    assert verify(TOKEN, "GET", PATH, signature, now=1_000_000.0 + VALID_FOR_SECONDS - 1)


def test_peer_signature_never_contains_the_token():
    assert TOKEN not in sign(TOKEN, "GET", PATH, now=1_000_000.0)


def test_peer_signature_expires_after_the_window():
    signature = sign(TOKEN, "GET", PATH, now=1_000_000.0)
    assert not verify(TOKEN, "GET", PATH, signature, now=1_000_000.0 + VALID_FOR_SECONDS + 1)


def test_peer_signature_for_another_path_method_or_token_is_refused():
    signature = sign(TOKEN, "GET", PATH, now=1_000_000.0)
    assert not verify(TOKEN, "GET", "/profiles/other", signature, now=1_000_000.0)
    assert not verify(TOKEN, "POST", PATH, signature, now=1_000_000.0)
    assert not verify("another-token", "GET", PATH, signature, now=1_000_000.0)


def test_peer_signature_malformed_is_refused():
    for signature in ("", "abc", "12:", ":deadbeef", "x:y"):
        assert not verify(TOKEN, "GET", PATH, signature, now=1_000_000.0)
