import pytest

from shared.envelope import Record
from shared.signing import MAC_HEADER, SIGNATURE_HEADER, BadSignature, Keyring, Signer

RECORD = Record(key=b"u1", value=b'{"a": 1}',
                headers=[("ce_id", b"1"), ("ce_type", b"dev.points.event.submitted.v1"),
                         ("content-type", b"application/json")])
SIGNER = Signer.from_seed("k1", bytes(range(32)))
KEYRING = Keyring({"k1": SIGNER.public_bytes()})
# What our services hold: the same public key, and the MAC key of the seed they sign with.
SERVICES = Keyring({"k1": SIGNER.public_bytes()}, macs={"k1": SIGNER.mac_key})


def _with(record: Record, name: str, value: bytes) -> Record:
    return Record(record.key, record.value, [(n, value if n == name else v) for n, v in record.headers])


def test_a_signed_record_verifies_with_the_published_keys():
    signed = SIGNER.sign(RECORD)
    assert KEYRING.verify(signed.key, signed.value, signed.headers) == "k1"
    assert Keyring.from_jwks(KEYRING.jwks()).verify(signed.key, signed.value, signed.headers) == "k1"
    assert SERVICES.verify(signed.key, signed.value, signed.headers) == "k1"


def test_the_mac_key_is_never_published():
    assert SERVICES.jwks() == KEYRING.jwks()
    assert SIGNER.mac_key.hex() not in repr(SERVICES) + repr(SIGNER)


def test_the_services_take_our_mac_as_proof_and_outsiders_the_signature():
    signed = SIGNER.sign(RECORD)
    # A bad MAC is refused by the services even beside a good signature, which outsiders still accept.
    bad_mac = _with(signed, MAC_HEADER, b"AAAA")
    with pytest.raises(BadSignature):
        SERVICES.verify(bad_mac.key, bad_mac.value, bad_mac.headers)
    assert KEYRING.verify(bad_mac.key, bad_mac.value, bad_mac.headers) == "k1"
    # The services do not spend an Ed25519 check where the MAC answers; outsiders have only the signature.
    bad_signature = _with(signed, SIGNATURE_HEADER, b"AAAA")
    assert SERVICES.verify(bad_signature.key, bad_signature.value, bad_signature.headers) == "k1"
    with pytest.raises(BadSignature):
        KEYRING.verify(bad_signature.key, bad_signature.value, bad_signature.headers)


def test_a_record_without_a_mac_is_checked_by_its_signature():
    signed = SIGNER.sign(RECORD)
    plain = Record(signed.key, signed.value, [(n, v) for n, v in signed.headers if n != MAC_HEADER])
    assert SERVICES.verify(plain.key, plain.value, plain.headers) == "k1"
    forged = Record(plain.key, b'{"a": 2}', plain.headers)
    with pytest.raises(BadSignature):
        SERVICES.verify(forged.key, forged.value, forged.headers)


def test_another_seeds_mac_under_our_key_id_is_refused():
    stranger = Signer.from_seed("k1", bytes(32)).sign(RECORD)
    with pytest.raises(BadSignature):
        SERVICES.verify(stranger.key, stranger.value, stranger.headers)


@pytest.mark.parametrize("keyring", [KEYRING, SERVICES], ids=["outsider", "service"])
@pytest.mark.parametrize("tamper", [
    lambda r: Record(b"u2", r.value, r.headers),
    lambda r: Record(r.key, b'{"a": 2}', r.headers),
    lambda r: Record(r.key, r.value, [(n, b"dev.points.event.decided.v1" if n == "ce_type" else v)
                                      for n, v in r.headers]),
    lambda r: Record(r.key, r.value, [(n, v) for n, v in r.headers if n != "ce_id"]),
])
def test_any_change_to_key_headers_or_value_breaks_the_signature(tamper, keyring):
    forged = tamper(SIGNER.sign(RECORD))
    with pytest.raises(BadSignature):
        keyring.verify(forged.key, forged.value, forged.headers)


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
