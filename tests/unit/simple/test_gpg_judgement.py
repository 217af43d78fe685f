"""How gpg's report on one signed message becomes accept or refuse (no gpg needed here)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from portieris_webhook.simple.keyring import SignatureRejected, VerifiedSignature, judge

PRIMARY = "A" * 40
SUBKEY = "B" * 40
STRANGER = "C" * 40
RING = frozenset({PRIMARY})


@dataclass
class Result:
    """The parts of python-gnupg's Crypt result that judge() reads."""

    stderr: str
    valid: bool
    data: bytes = b"{}"
    status: str | None = None
    key_id: str | None = None


def report(*lines: str) -> str:
    return "\n".join(f"[GNUPG:] {line}" for line in lines) + "\n"


def good(signer: str = PRIMARY, primary: str = PRIMARY) -> list[str]:
    return [
        "NEWSIG",
        "SIG_ID abc 2024-01-01 1700000000",
        f"GOODSIG {signer[-16:]} someone <s@x>",
        f"VALIDSIG {signer} 2024-01-01 1700000000 0 4 0 1 10 00 {primary}",
        "TRUST_UNDEFINED 0 pgp",
    ]


def test_one_good_signature_by_a_primary_key_of_the_ring_is_accepted() -> None:
    assert judge(Result(report(*good()), True, b"payload"), RING) == VerifiedSignature(
        b"payload", PRIMARY
    )


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (Result(report("NODATA 1"), False), "not an OpenPGP signed message"),
        (Result("", False), "not an OpenPGP signed message"),
        (Result(report(*good(), *good()), True), "holds 2 signatures"),
        (
            Result(report("NEWSIG", "BADSIG 1234 x", *good()), True),
            "holds 2 signatures",
        ),
        (
            Result(report("NEWSIG", "BADSIG 1234 x"), False, status="signature bad", key_id="1234"),
            "by key 1234 does not verify with the secret's keys: signature bad",
        ),
        (Result(report("NEWSIG", "ERRSIG 1234 1 8 00 1700000000 9"), False), "cannot be checked"),
        (Result(report("NEWSIG", "EXPKEYSIG 1234 x"), False), "signing key has expired"),
        (Result(report("NEWSIG", "REVKEYSIG 1234 x"), False), "signing key was revoked"),
        # python-gnupg returns the data even when the signature is bad: `valid` is decisive
        (Result(report(*good()), False), "does not verify"),
        (Result(report(*good()[:3]), True), "no VALIDSIG"),
        (Result(report(*good(SUBKEY, PRIMARY)), True), f"signed by subkey {SUBKEY}"),
        (Result(report(*good(STRANGER, STRANGER)), True), f"key {STRANGER}, which the secret"),
    ],
)
def test_anything_but_one_good_primary_key_signature_is_refused(
    result: Result, message: str
) -> None:
    with pytest.raises(SignatureRejected, match=message):
        judge(result, RING)
