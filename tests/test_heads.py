"""Code tests of the heads, the sentence cutter and the organisation gazetteer, on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from newsclf.gazetteer import find_organisations, prior_region
from newsclf.heads import Features, ViewBlend, fit_temperature, with_temperature
from newsclf.sentences import article_sentences


def _data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    dense = rng.normal(size=(n, 8)) + np.eye(3)[y] @ rng.normal(size=(3, 8)) * 1.5
    lexical = sparse.csr_matrix(np.abs(rng.normal(size=(n, 30))) * (rng.random((n, 30)) < 0.2)
                                + np.eye(3)[y] @ (rng.random((3, 30)) < 0.3) * 0.5)
    return Features(embedding=dense, lexical=lexical), y


def test_temperature_keeps_rows_summing_to_one_and_fits_overconfidence():
    proba = np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.01, 0.98]])
    y = np.array([0, 1, 1, 2])  # one confident mistake in four: the fitted temperature softens (T > 1)
    assert np.allclose(with_temperature(proba, 2.0).sum(axis=1), 1.0)
    assert fit_temperature(proba, y) > 1.0
    assert with_temperature(proba, 1.0) is proba


def test_one_view_without_calibration_is_a_plain_logistic_regression():
    F, y = _data()
    blend = ViewBlend(views=("embedding",), C_embedding=4.0, calibrate=False).fit(F, y)
    plain = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000).fit(F.embedding, y)
    assert np.allclose(blend.predict_proba(F), plain.predict_proba(F.embedding))
    assert blend.weight_ == 1.0 and blend.temperature_ == 1.0


def test_two_views_are_blended_by_a_weight_chosen_on_out_of_fold_scores():
    F, y = _data()
    blend = ViewBlend(views=("embedding", "lexical")).fit(F, y)
    assert blend.views_ == ("embedding", "lexical")
    assert blend.weight_ in blend.weight_grid and set(blend.weight_scores_) == set(blend.weight_grid)
    assert blend.oof_proba_.shape == (len(y), 3)
    proba = blend.predict_proba(F)
    assert np.allclose(proba.sum(axis=1), 1.0)
    lexical_only = ViewBlend(views=("lexical",)).fit(Features(lexical=F.lexical), y)
    assert lexical_only.weight_ == 0.0 and lexical_only.predict_proba(Features(lexical=F.lexical)).shape == (240, 3)


def test_a_missing_view_is_an_error_not_a_silent_fallback():
    F, y = _data()
    with pytest.raises(ValueError, match="none of the views"):
        ViewBlend(views=("lexical",)).fit(Features(embedding=F.embedding), y)


def test_sentences_are_spans_of_the_text_without_teasers_or_captions():
    text = ("Hanoï (VNA) – Les deux polices sont convenues d'échanger des informations sur les trafiquants.\n"
            "Titre ảnh 1Le ministre reçoit son homologue. Photo : VNA\n"
            "Elles formeront aussi des enquêteurs; la coopération sera évaluée en mai.\n"
            "Voir plus\n"
            "Un autre sujet sans rapport avec cet article, sur le tourisme au Japon.")
    spans = article_sentences(text)
    pieces = [text[s.start:s.end] for s in spans]
    assert pieces[0].startswith("Hanoï (VNA) – Les deux polices") and pieces[0].endswith("trafiquants.")
    assert "Elles formeront aussi des enquêteurs;" in pieces
    assert not any("Photo" in p or "tourisme" in p for p in pieces)


def test_organisations_and_the_multilateral_prior():
    assert find_organisations("Tại Hội nghị ASEANAPOL và với Interpol") == ["ASEANAPOL", "Interpol"]
    region_of = {"TH": "southeast_asia", "MY": "southeast_asia", "ID": "southeast_asia", "JP": "east_asia"}
    meeting = ("Les chefs de police de l'ASEAN réunis à Kuala Lumpur\n"
               "La conférence de l'ASEANAPOL a réuni la Malaisie, l'Indonésie, la Thaïlande et le Vietnam.")
    assert prior_region(meeting, [("MY", 3.0), ("ID", 2.0), ("TH", 2.0)], region_of) == "multilateral"
    sideline = ("Le ministre rencontre son homologue thaïlandais en marge de l'ASEANAPOL\n"
                "En marge de la conférence de l'ASEANAPOL, le ministre a reçu le chef de la police thaïlandaise.")
    assert prior_region(sideline, [("TH", 5.0)], region_of) == "southeast_asia"
    assert prior_region("Le Vietnam et le Japon signent un accord\nTokyo.", [("JP", 4.0)], region_of) == "east_asia"
