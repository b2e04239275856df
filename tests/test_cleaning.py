"""Code tests: the one cleaning function, on the noise real scraped pages carry."""

from __future__ import annotations

from newsclf.cleaning import clean_text, is_caption, prepare_document, split_teasers
from training.paths import RAW_SEEDS

PAGE = """Le Vietnam et le Laos renforcent leur coopération

Le Vietnam et le Laos renforcent leur coopération ảnh 1Le ministre (droite) reçoit son homologue. Photo : VNA
Hanoï (VNA) – Les deux ministères ont signé un plan de lutte contre la drogue.
Hanoï (VNA) – Les deux ministères ont signé un plan de lutte contre la drogue.
Le général de corps d'arméeTô Lâm a salué la coopération.
[Le Vietnam et la Russie vont dynamiser leur partenariat stratégique intégral]
Voir plus

Le Premier ministre s'exprime lors de la réunion. Photo: VNA

Le Vietnam et le Japon signent un accord sur l'intelligence artificielle
"""


def test_teaser_block_is_cut_at_the_marker_line():
    article, teasers = split_teasers(PAGE)
    assert "Voir plus" not in article
    assert teasers.startswith("Voir plus")
    assert "Japon" in teasers and "Japon" not in article


def test_clean_text_drops_captions_doubles_links_and_title():
    title = "Le Vietnam et le Laos renforcent leur coopération"
    cleaned = clean_text(PAGE, title)
    assert title not in cleaned
    assert "Photo" not in cleaned and "ảnh 1" not in cleaned
    assert cleaned.count("lutte contre la drogue") == 1
    assert "Russie" not in cleaned and "Japon" not in cleaned
    assert "armée Tô Lâm" in cleaned  # glued words split at a lower/upper-case seam


def test_prepare_document_puts_the_title_first_once():
    doc = prepare_document(PAGE, "Le Vietnam et le Laos renforcent leur coopération")
    assert doc.splitlines()[0] == "Le Vietnam et le Laos renforcent leur coopération"
    assert doc.count("renforcent leur coopération") == 1


def test_prepare_document_without_cleaning_keeps_everything():
    assert "Voir plus" in prepare_document(PAGE, clean=False)


def test_captions_are_recognised_in_their_real_variants():
    assert is_caption("Le ministre To Lam (droite). Photo : VNA")
    assert is_caption("Le département offre des cadeaux. (Photo : VNA)")
    assert is_caption("Vu Viet Trang et Andrey Kondrashov ont signé un accord. Photo ; VNA")
    assert is_caption("L'ambassadeur lors de la réunion, à Genève. Photo diffusée par la VNA")
    assert not is_caption("Les deux parties ont renforcé la coopération contre la drogue.")


def test_every_real_seed_page_loses_its_teasers_and_keeps_its_article():
    for path in sorted(RAW_SEEDS.glob("*.txt")):
        raw = path.read_text(encoding="utf-8")
        cleaned = clean_text(raw)
        assert "Voir plus" not in cleaned, path.name
        assert "Photo" not in cleaned, path.name
        assert len(cleaned) > 0.3 * len(split_teasers(raw)[0]), path.name


def test_text_without_noise_is_left_as_is():
    text = "Hanoi (VNA) – Vietnam and Australia agreed to expand police training.\nThe deal runs to 2030."
    assert clean_text(text) == text
