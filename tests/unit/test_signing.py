import pytest

from shared.envelope import Record
from shared.signing import BadSignature, Keyring, Signer

RECORD = Record(key=b"u1", value=b'{"a": 1}',
                headers=[("ce_id", b"1"), ("ce_type", b"dev.points.event.submitted.v1"),
                         ("content-type", b"application/json")])
SIGNER = Signer.from_seed("k1", bytes(range(32)))
KEYRING = Keyring({"k1": SIGNER.public_bytes()})


def test_a_signed_record_verifies_with_the_published_keys():
    signed = SIGNER.sign(RECORD)
    assert KEYRING.verify(signed.key, signed.value, signed.headers) == "k1"
    assert Keyring.from_jwks(KEYRING.jwks()).verify(signed.key, signed.value, signed.headers) == "k1"


@pytest.mark.parametrize("tamper", [
    lambda r: Record(b"u2", r.value, r.headers),
    lambda r: Record(r.key, b'{"a": 2}', r.headers),
    lambda r: Record(r.key, r.value, [(n, b"dev.points.event.decided.v1" if n == "ce_type" else v)
                                      for n, v in r.headers]),
    lambda r: Record(r.key, r.value, [(n, v) for n, v in r.headers if n != "ce_id"]),
])
def test_any_change_to_key_headers_or_value_breaks_the_signature(tamper):
    forged = tamper(SIGNER.sign(RECORD))
    with pytest.raises(BadSignature):
        KEYRING.verify(forged.key, forged.value, forged.headers)


def test_an_unsigned_record_is_refused():
    with pytest.raises(BadSignature, match="not signed"):
        KEYRING.verify(RECORD.key, RECORD.value, RECORD.headers)


def test_a_record_signed_by_an_unknown_key_is_refused():
    stranger = Signer.from_seed("k1", bytes(32)).sign(RECORD)
    with pytest.raises(BadSignature):
        KEYRING.verify(stranger.key, stranger.value, stranger.headers)
    other_kid = Signer.from_seed("k9", bytes(range(32))).sign(RECORD)
    with pytest.raises(BadSignature, match="unknown signing key"):
        KEYRING.verify(other_kid.key, other_kid.value, other_kid.headers)


def test_a_rotated_out_key_still_verifies_while_listed():
    old, new = Signer.from_seed("old", bytes(32)), SIGNER
    ring = Keyring({"old": old.public_bytes(), "k1": new.public_bytes()})
    record = old.sign(RECORD)
    assert ring.verify(record.key, record.value, record.headers) == "old"
