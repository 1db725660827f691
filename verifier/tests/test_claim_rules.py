"""The claim rules are one table; breaking exactly one rule yields exactly the error naming it.

The cases are generated from the verifier's own table (``_LICENSE_RULES`` and
``_ACTIVATION_RULES``), so a rule added to it is tested here without further work, and a kind
added without bad values below fails ``test_every_kind_has_bad_values``. The set of claims
is pinned to docs/token-format.md so the table cannot quietly lose a rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from licentia_verifier import MalformedToken
from licentia_verifier._verifier import (
    _ACTIVATION_RULES,
    _FEATURES,
    _ID,
    _INTEGER,
    _LICENSE_RULES,
    _OPTIONAL_ID,
    _OPTIONAL_STRING,
    _OPTIONAL_TIME,
    _OPTIONAL_TRUE,
    _STRING,
    _TIME,
    _TIME_OR_NULL,
)

MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z

# Values that break each kind (every one is valid JSON, so the token itself is well formed).
BAD_VALUES: dict[str, list[Any]] = {
    _STRING: [None, 7, 1.5, True, ["x"], {"x": "y"}],
    _TIME: [None, True, 1.5, 1.78e9, "1780000000", -1, MAX_EPOCH + 1, 10**20, [1]],
    _ID: [
        None,
        16,
        "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",  # the UUID text form
        "5f0c6f1e8f4e4d0a9a435b7c1f0e2d11",  # hex
        "XwxvHo9OTQqaQ1t8Hw4tER",  # non-zero unused bits in the last character
        "XwxvHo9OTQqaQ1t8Hw4tE",  # 21 characters
        "XwxvHo9OTQqaQ1t8Hw4tEQA",  # 23 characters
        "XwxvHo9OTQqaQ1t8Hw4tEQ==",  # padded
        "XwxvHo9OTQqaQ1t8Hw4t+Q",  # standard alphabet
        "XwxvHo9OTQqaQ1t8Hw4t Q",
        "XwxvHo9OTQqaQ1t8Hw4t\u00e9Q",  # 22 characters, not ASCII
        "XwxvHo9OTQqaQ1t8Hw4t\ud800Q",  # 22 characters, a lone surrogate
        "",
    ],
    _INTEGER: [None, True, 3.0, "3", [3]],
    _TIME_OR_NULL: [False, 1.5, "never", -1, MAX_EPOCH + 1, {}],
    _FEATURES: [
        None,
        ["sso"],
        "sso",
        {"sso": None},
        {"sso": {"nested": True}},
        {"sso": [1]},
        {"ok": True, "bad": None},
    ],
    _OPTIONAL_STRING: [None, 5, True, ["n"]],
    _OPTIONAL_TIME: [None, False, 1.5, "1780000000", -1, MAX_EPOCH + 1, [1]],
    _OPTIONAL_TRUE: [None, False, 1, "true", [True]],
}
BAD_VALUES[_OPTIONAL_ID] = BAD_VALUES[_ID]  # null is not absence
OPTIONAL_KINDS = (_OPTIONAL_STRING, _OPTIONAL_TIME, _OPTIONAL_TRUE, _OPTIONAL_ID)

LICENSE_CLAIMS = {
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "org",
    "tier",
    "features",
    "max_activations",
    "license_expires_at",
    "nonce",
    "updates_until",
    "trial",
}


def rule_cases() -> list[Any]:
    cases = []
    for typ, rules in (("license+jwt", _LICENSE_RULES), ("activation+jwt", _ACTIVATION_RULES)):
        for claim, kind in rules:
            for value in BAD_VALUES.get(kind, []):
                cases.append(pytest.param(typ, claim, value, f"claim {claim!r} must be {kind}"))
            if kind not in OPTIONAL_KINDS:
                cases.append(pytest.param(typ, claim, ..., f"missing required claim {claim!r}"))
    return cases


def test_the_table_has_every_documented_claim():
    assert {claim for claim, _ in _LICENSE_RULES} == LICENSE_CLAIMS
    assert {claim for claim, _ in _ACTIVATION_RULES} == LICENSE_CLAIMS | {"act", "fp", "usr"}
    # One rule per claim: a claim with two rules would make "the rule that failed" ambiguous.
    for rules in (_LICENSE_RULES, _ACTIVATION_RULES):
        assert len({claim for claim, _ in rules}) == len(rules)
    assert dict(_ACTIVATION_RULES)["act"] is _ID
    assert dict(_ACTIVATION_RULES)["fp"] is _STRING
    assert dict(_ACTIVATION_RULES)["usr"] is _OPTIONAL_ID


def test_every_kind_has_bad_values():
    for _, kind in _ACTIVATION_RULES:
        assert BAD_VALUES.get(kind), f"no bad values for the kind {kind!r}"


@pytest.mark.parametrize(("typ", "claim", "value", "message"), rule_cases())
def test_breaking_one_rule_names_exactly_that_rule(env, typ, claim, value, message):
    make = env.activation_claims if typ == "activation+jwt" else env.license_claims
    claims = make()
    if value is ...:
        claims.pop(claim)
    else:
        claims[claim] = value
    token = env.sign(env.header(typ), claims)
    verifier = env.verifier()
    with pytest.raises(MalformedToken) as caught:
        if typ == "activation+jwt":
            verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
        else:
            verifier.verify_license(token, now=env.NOW)
    assert type(caught.value) is MalformedToken
    assert str(caught.value) == message


@pytest.mark.parametrize("typ", ["license+jwt", "activation+jwt"])
def test_the_untouched_claims_break_no_rule(env, typ):
    """The base of every case above is valid, so the only broken rule is the one changed."""
    verifier = env.verifier()
    if typ == "activation+jwt":
        token = env.sign(env.header(typ), env.activation_claims(nonce="n"))
        assert verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    else:
        assert verifier.verify_license(env.sign(env.header(typ), env.license_claims()), now=env.NOW)


def test_good_values_of_every_kind_are_accepted(env):
    verifier = env.verifier()
    good = {
        "features": {"a": True, "b": False, "n": -3, "f": 0.25, "s": "", "big": 2**70},
        "license_expires_at": None,
        "max_activations": -1,  # an integer; its range is the server's business
        "nonce": "",
        "iat": 0,
        "nbf": 0,
        "tier": "",
        "updates_until": 0,
        "trial": True,
    }
    for claim, value in good.items():
        token = env.license(**{claim: value})
        assert verifier.verify_license(token, now=env.NOW), claim
    token = env.license(exp=MAX_EPOCH)
    assert verifier.verify_license(token, now=env.NOW)
