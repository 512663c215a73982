"""Accuracy on the labelled corpus at medium confidence. The detectors were tuned on seed 1;
this scores seed 2, which they never saw. Bar: F1 >= 0.95 for US_SSN, CREDIT_CARD,
ABA_ROUTING_NUMBER and IBAN_CODE; every other type is held to 0.9 so a regression shows."""

from __future__ import annotations

import pytest

from sealgate.dlp import Engine, Scanner, scan_text
from sealgate.dlp.engine import hyperscan
from sealgate.lab.dlp_corpus import LABEL_TYPES, Sample, generate, score

BAR = {"US_SSN": 0.95, "CREDIT_CARD": 0.95, "ABA_ROUTING_NUMBER": 0.95, "IBAN_CODE": 0.95}


@pytest.fixture(scope="module")
def held_out() -> list[Sample]:
    return generate(seed=2, count=2000)


def test_f1_per_type_at_medium(held_out: list[Sample]) -> None:
    table = score(held_out, scan_text)
    print("\n" + "\n".join(f"{kind:24} precision {row['precision']:.3f} recall "
                            f"{row['recall']:.3f} f1 {row['f1']:.3f}"
                            for kind, row in sorted(table.items())))
    assert set(LABEL_TYPES) <= set(table)
    below = {kind: round(float(row["f1"]), 3) for kind, row in table.items()
             if row["f1"] < BAR.get(kind, 0.9)}
    assert below == {}


@pytest.mark.skipif(hyperscan is None, reason="hyperscan is not installed")
def test_both_engines_give_the_same_findings(held_out: list[Sample]) -> None:
    compiled, plain = Scanner(engine=Engine.HYPERSCAN), Scanner(engine=Engine.RE)
    differing = [sample.text[:80] for sample in held_out[:600]
                 if compiled.scan(sample.text) != plain.scan(sample.text)]
    assert differing == []
