import math
import uuid

from shared.coupon_codes import ALPHABET, CouponKeys, derive, normalise

KEY = b"k" * 32


def test_a_code_has_at_least_80_bits_in_an_unambiguous_grouped_alphabet():
    code = derive(uuid.uuid4(), KEY)
    groups = code.split("-")
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert len("".join(groups)) * math.log2(len(ALPHABET)) >= 80
    assert not set("ILOU") & set(code)


def test_the_same_coupon_always_gets_the_same_code_and_others_differ():
    coupon = uuid.uuid4()
    assert derive(coupon, KEY) == derive(coupon, KEY)
    assert len({derive(uuid.uuid4(), KEY) for _ in range(1000)}) == 1000
    assert derive(coupon, b"another key" * 3) != derive(coupon, KEY)


def test_what_a_merchant_types_is_read_forgivingly():
    code = derive(uuid.uuid4(), KEY)
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert normalise(typed) == code
    assert normalise("not-a-code") is None
    assert normalise(code + "A") is None


def test_a_code_still_verifies_under_a_rotated_out_secret():
    old = CouponKeys(KEY, ("k1", b"old secret"))
    new = CouponKeys(KEY, ("k2", b"new secret"), {"k1": b"old secret"})
    code = new.code_for(uuid.uuid4())
    assert old.hash_for(code) in new.candidate_hashes(code)
    assert new.hash_for(code) != old.hash_for(code)
