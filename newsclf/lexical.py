"""The lexical view of a text: word (1-2) and character (2-5, within words) n-gram TF-IDF.

Agency copy names what it is about with a small set of words per field ("Sécurité publique", "Bộ Công an",
"police", "quốc phòng") that an embedding of the whole article blurs; n-grams keep them, across the three
languages and the scraper's glued words. Fitted on training documents only (inside every fold).
"""

from __future__ import annotations

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

MAX_CHAR_FEATURES = 200_000


def lexical_vectorizer(max_char_features: int = MAX_CHAR_FEATURES) -> FeatureUnion:
    return FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                 max_features=max_char_features)),
    ])
