"""Reports: the decision in words, every summary field, and no markup injected through names or texts."""

from __future__ import annotations

import json

from tracemark.theft import TheftVerdict, render_html, render_markdown


def verdict(decision: str = "evidence") -> TheftVerdict:
    return TheftVerdict(
        test="radioactivity/closed",
        question="Was the suspect trained on our text?",
        h0="independent of the key",
        decision=decision,  # type: ignore[arg-type]
        reasons=("budget not reached: 10 of 20 tokens",) if decision == "inconclusive" else (),
        alpha=1e-3,
        p_value=0.0,
        log10_p_value=-412.5,
        p_value_method="weighted-binomial-exact",
        statistic={"name": "weighted", "value": 12.0},
        effect={"estimate": 0.05, "ci_low": 0.03, "ci_high": 0.07},
        counts={"distinct_tuples": 900},
        correction={"method": "Bonferroni over keys tried", "keys_tried": 3},
        null_check={"passed": True, "wrong_keys": 100},
        details=({"key_id": "k1", "p_value": 1e-9, "top": [1, 2]},),
        evidence={"suspect": "<script>alert(1)</script>", "response_sha256": ["ab" * 32]},
    )


def test_html_escapes_untrusted_text_and_states_the_decision() -> None:
    page = render_html(verdict())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "EVIDENCE: the null hypothesis is rejected" in page
    assert "-412.5" in page


def test_markdown_lists_summary_details_and_evidence() -> None:
    text = render_markdown(verdict("inconclusive"))
    assert "INCONCLUSIVE" in text
    assert "| reason | budget not reached: 10 of 20 tokens |" in text
    assert "| key_id | p_value |" in text
    pack = text.split("```json\n")[1].split("```")[0]
    assert json.loads(pack)["response_sha256"] == ["ab" * 32]


def test_json_has_no_non_finite_numbers() -> None:
    from dataclasses import replace

    data = replace(verdict(), log10_p_value=float("-inf"), effect={"estimate": float("nan")}).to_json()
    text = json.dumps(data, allow_nan=False)
    assert '"format": "tracemark.theft.verdict/v1"' in text
    assert data["log10_p_value"] is None
    assert data["effect"]["estimate"] is None
