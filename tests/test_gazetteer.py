"""Code tests: partner countries found in French, English and Vietnamese, ranked by prominence."""

from __future__ import annotations

import pytest

from newsclf.gazetteer import find_mentions, rank_partners


def codes(text: str) -> list[str]:
    return [m.code for m in find_mentions(text)]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Le ministre a été reçu à Pékin.", "CN"),
        ("la délégation laotienne", "LA"),
        ("les autorités britanniques", "GB"),
        ("a rencontré son homologue à Moscou", "RU"),
        ("Hanoi and Canberra signed a memorandum", "AU"),
        ("Bộ Công an Việt Nam và phía Lào", "LA"),
        ("hợp tác với Nga trong lĩnh vực an ninh", "RU"),
        ("la police de Norvège", "NO"),
        ("Vietnam – République de Corée", "KR"),
        ("The U.S. Federal Bureau of Investigation", "US"),
    ],
)
def test_names_capitals_and_demonyms(text, code):
    assert code in codes(text)


def test_vietnam_is_never_a_partner():
    assert codes("Le Vietnam, Viêt Nam, Việt Nam, Vietnamese, vietnamien") == []


def test_ambiguous_vietnamese_words_need_a_cue():
    # "Anh" is also a given name and "mỹ" a common word: no country without a cue word.
    assert codes("Ông Nguyễn Văn Anh phát biểu về thẩm mỹ") == []
    assert codes("Việt Nam - Anh nhất trí tăng cường hợp tác") == ["GB"]


def test_common_words_are_not_countries():
    assert codes("La réunion s'est tenue mardi; us and them.") == []


def test_longest_name_wins():
    assert codes("Papouasie-Nouvelle-Guinée") == ["PG"]


def test_prominence_puts_the_title_country_first():
    document = "Vietnam – Laos : coopération renforcée\nLe ministre laotien a évoqué une réunion tenue en Thaïlande."
    ranked = rank_partners(document, min_share=0.0)
    assert [c for c, _ in ranked] == ["LA", "TH"]
    assert [c for c, _ in rank_partners(document, min_share=0.5)] == ["LA"]
