"""The per-recipient plan: the first method in the recipient's order that fits wins, with
the evidence for it and for every method passed over."""

from __future__ import annotations

from sealgate.routing.plan import Facts, Method, RoutingRules, plan

TLS = Facts(tls=True, tls_evidence=("MTA-STS enforce covers mx.tls.test",))
CERT = Facts(smime=True, smime_evidence="S/MIME certificate sha256 AB:CD valid to 2027-01-01")
KEY = Facts(pgp=True, pgp_evidence="OpenPGP key 0123ABCD, encryption subkey valid")


def test_the_default_order_picks_the_best_method_for_each_recipient() -> None:
    result = plan(["a@tls.test", "b@cert.test", "c@key.test", "d@plain.test", "e@example.org"],
                  ["e@example.org"],
                  {"a@tls.test": TLS, "b@cert.test": CERT, "c@key.test": KEY},
                  RoutingRules())
    assert [(c.address, c.method) for c in result.choices] == [
        ("a@tls.test", Method.TLS), ("b@cert.test", Method.SMIME), ("c@key.test", Method.PGP),
        ("d@plain.test", Method.PORTAL), ("e@example.org", Method.INTERNAL)]
    assert result.groups() == {Method.TLS: ("a@tls.test",), Method.SMIME: ("b@cert.test",),
                               Method.PGP: ("c@key.test",), Method.PORTAL: ("d@plain.test",),
                               Method.INTERNAL: ("e@example.org",)}


def test_evidence_names_what_was_passed_over_and_why_the_choice_fits() -> None:
    (choice,) = plan(["b@cert.test"], [], {"b@cert.test": CERT}, RoutingRules()).choices
    assert choice.evidence == ("verified TLS: not available", CERT.smime_evidence)
    (portal,) = plan(["d@plain.test"], [], {}, RoutingRules()).choices
    assert portal.evidence == ("verified TLS: not available",
                               "S/MIME: no usable certificate", "PGP: no usable key",
                               "the portal")


def test_domain_and_recipient_orders_override_the_organisations() -> None:
    rules = RoutingRules(domains={"partner.test": (Method.PGP, Method.PORTAL)},
                         recipients={"ceo@partner.test": (Method.SMIME,)})
    both = Facts(tls=True, smime=True, pgp=True, smime_evidence="cert", pgp_evidence="key")
    facts = {"x@mail.partner.test": both, "ceo@partner.test": both, "y@other.test": both}
    result = plan(list(facts), [], facts, rules)
    assert [c.method for c in result.choices] == [Method.PGP, Method.SMIME, Method.TLS]


def test_the_sender_can_force_the_portal() -> None:
    (choice,) = plan(["a@tls.test"], [], {"a@tls.test": TLS}, RoutingRules(),
                     force_portal=True).choices
    assert choice.method is Method.PORTAL
    assert choice.evidence == ("the sender asked for the portal",)


def test_no_method_when_nothing_fits_and_the_portal_is_off() -> None:
    rules = RoutingRules(portal_enabled=False)
    (choice,) = plan(["d@plain.test"], [], {}, rules).choices
    assert choice.method is Method.NONE
    assert choice.evidence[-1] == "portal: disabled"
    (forced,) = plan(["a@tls.test"], [], {"a@tls.test": TLS}, rules, force_portal=True).choices
    assert forced.method is Method.NONE


def test_rules_come_from_the_configuration() -> None:
    from sealgate.config import Config
    from sealgate.routing.plan import rules_of

    config = Config(home="/tmp/sealgate-rules", routing={  # type: ignore[arg-type]
        "order": ["smime", "portal"], "domains": {"Partner.TEST": ["pgp"]},
        "recipients": {"CEO@x.test": ["tls", "portal"]}, "portal_enabled": False})
    rules = rules_of(config.routing)
    assert rules.order == (Method.SMIME, Method.PORTAL) and not rules.portal_enabled
    assert rules.order_for("a@mail.partner.test") == (Method.PGP,)
    assert rules.order_for("ceo@x.test") == (Method.TLS, Method.PORTAL)


def test_a_signing_key_without_its_certificate_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from sealgate.config import Config

    with pytest.raises(ValidationError, match="go together"):
        Config(home="/tmp/sealgate-rules",  # type: ignore[arg-type]
               routing={"smime_sign_key": "org.key"})
