"""What every fit of one training reads that does not depend on the fold, computed once per training.

A training fits the heads seven times (five cross-validation folds, the real-text check, the shipped model) on
overlapping subsets of one corpus. Each article's prepared document, its vector, its gazetteer ranking, its
sentences, and the n-gram counts of its document and of its sentences are the same in every fit: reading the
texts again in each fit was a third of a fit's time. What a fit *learns* (the n-grams kept, their IDF weights,
the classifiers) still comes from that fit's training articles alone: ``NgramCounts.fit(rows)`` returns the
TF-IDF vectorizer that fitting on those rows' texts returns, without reading them again (``tests/test_training``
checks it against scikit-learn's own fit, vocabulary and matrix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from newsclf.embedding import Embedder
from newsclf.gazetteer import rank_partners
from newsclf.heads import SentenceTopics
from newsclf.lexical import lexical_vectorizer
from newsclf.predictor import ArticleSentences, prepare_documents, read_sentences
from training.config import TrainConfig
from training.records import Article

COUNT_PARAMS = frozenset(CountVectorizer().get_params())


@dataclass(frozen=True)
class _Part:
    name: str
    vectorizer: TfidfVectorizer  # unfitted: its settings
    terms: np.ndarray  # every n-gram of the corpus, sorted as scikit-learn sorts a fitted vocabulary
    counts: sp.csr_matrix  # texts x terms


class NgramCounts:
    """The n-gram counts of a corpus of texts under the settings of a (word + character) TF-IDF union."""

    def __init__(self, template: FeatureUnion, texts: Sequence[str]) -> None:
        self.template = template
        self.parts = []
        for name, vectorizer in template.transformer_list:
            settings = {k: v for k, v in vectorizer.get_params().items() if k in COUNT_PARAMS}
            # Every n-gram of every text: the fold's min_df and max_features are applied in ``fit``.
            counter = CountVectorizer(**(settings | {"min_df": 1, "max_df": 1.0, "max_features": None}))
            counts = counter.fit_transform(texts) if len(texts) else sp.csr_matrix((0, 0))
            terms = counter.get_feature_names_out() if len(texts) else np.array([], dtype=object)
            self.parts.append(_Part(name, vectorizer, terms, sp.csr_matrix(counts)))

    def fit(self, rows: np.ndarray) -> tuple[FeatureUnion, sp.csr_matrix]:
        """The union fitted on the texts ``rows`` (as ``template.fit_transform`` on them), and their matrix."""
        fitted, blocks = [], []
        for part in self.parts:
            vectorizer, X = _fit_part(part, part.counts[rows])
            fitted.append((part.name, vectorizer))
            blocks.append(X)
        union = clone(self.template)
        union.transformer_list = fitted
        return union, sp.hstack(blocks).tocsr()


def _fit_part(part: _Part, counts: sp.csr_matrix) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """scikit-learn's vocabulary pruning (``CountVectorizer._limit_features``) and IDF, on the rows' counts."""
    v = part.vectorizer
    n = counts.shape[0]
    high = v.max_df if isinstance(v.max_df, Integral) else v.max_df * n
    low = v.min_df if isinstance(v.min_df, Integral) else v.min_df * n
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = (df >= max(low, 1)) & (df <= high)  # n-grams absent from the rows are not in their vocabulary
    if v.max_features is not None and keep.sum() > v.max_features:
        tfs = np.asarray(counts.sum(axis=0)).ravel()
        # The same ordering as scikit-learn's (the same array, the same sort): ties break the same way.
        best = (-tfs[keep]).argsort()[: v.max_features]
        limited = np.zeros_like(keep)
        limited[np.where(keep)[0][best]] = True
        keep = limited
    columns = np.where(keep)[0]
    if len(columns) == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    transformer = TfidfTransformer(norm=v.norm, use_idf=v.use_idf, smooth_idf=v.smooth_idf,
                                   sublinear_tf=v.sublinear_tf)
    X = transformer.fit_transform(counts[:, columns])
    fitted = clone(v)
    fitted.vocabulary_ = {str(part.terms[c]): i for i, c in enumerate(columns)}
    fitted.fixed_vocabulary_ = False
    if v.use_idf:
        fitted.idf_ = transformer.idf_  # the public setter: builds the fitted transformer transform() uses
    return fitted, sp.csr_matrix(X)


class CorpusFeatures:
    """Everything per article that a fit reads and that no fit learns, for the articles of one training."""

    def __init__(self, articles: Sequence[Article], embedder: Embedder, config: TrainConfig, *,
                 embeddings: np.ndarray | None = None) -> None:
        """``embeddings``: the articles' vectors when the caller has them (else ``embedder`` computes them)."""
        self.articles = list(articles)
        self.row = {a.id: i for i, a in enumerate(articles)}
        if len(self.row) != len(articles):
            raise ValueError("article ids must be unique to share features between fits")
        self.documents = prepare_documents(articles, clean=config.clean)
        self.embeddings = None
        if "embedding" in config.views:
            self.embeddings = embedder.encode(self.documents) if embeddings is None else embeddings
            if len(self.embeddings) != len(articles):
                raise ValueError(f"{len(self.embeddings)} vectors for {len(articles)} articles")
        self.ranked = [rank_partners(d, min_share=0.0) for d in self.documents]
        self.lexical = NgramCounts(lexical_vectorizer(), self.documents) if "lexical" in config.views else None
        self.sentences: list[ArticleSentences] | None = None
        self.sentence_counts = None
        if config.topics.sentence_model:
            self.sentences = read_sentences(articles)
            sizes = [len(s.texts) for s in self.sentences]
            self.sentence_start = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            self.sentence_counts = NgramCounts(SentenceTopics.vectorizer(),
                                               [t for s in self.sentences for t in s.texts])

    def rows(self, articles: Sequence[Article]) -> np.ndarray:
        try:
            return np.array([self.row[a.id] for a in articles], dtype=int)
        except KeyError as exc:
            raise ValueError(f"article {exc} is not among the articles these features were computed for") from None

    def sentence_rows(self, rows: np.ndarray) -> np.ndarray:
        """The rows of the sentence counts that belong to articles ``rows``, in their order."""
        parts = [np.arange(self.sentence_start[r], self.sentence_start[r + 1]) for r in rows]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=int)
