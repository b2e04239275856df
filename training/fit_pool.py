"""The fits of one training in worker processes.

A training fits its heads seven times (five cross-validation folds, the real-text check, the shipped model), each
independently of the others. Worker processes on two cores nearly halve that time; threads did not (four fold fits,
side by side while another job shared the machine: one after another 76 s, two threads 65 s, two processes 41 s:
the TF-IDF, gazetteer and Python-level parts of scikit-learn hold the GIL), and threaded liblinear fits are not
reproducible. Each worker receives the training's ``CorpusFeatures`` and configuration once, then fits from row
numbers and sends back the fitted ``Heads``; the embedder stays in the calling process, which predicts with the
usual ``Predictor``. The fitted heads are the same whatever the number of workers
(``tests/test_corpus_features.py``).

Workers are spawned, so a script that trains must guard its entry point (``if __name__ == "__main__":``), as
``newsclf``, ``python -m training.train`` and the benchmarks do.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from newsclf.predictor import Heads
from training.config import TrainConfig
from training.corpus_features import CorpusFeatures
from training.fitting import fit_model
from training.records import Article

_WORKER: tuple[CorpusFeatures, TrainConfig] | None = None  # set in each worker process by _start_worker


def _start_worker(corpus: CorpusFeatures, config: TrainConfig) -> None:
    global _WORKER
    # One core per worker: BLAS threads or per-topic threads would only compete with the other workers.
    threadpool_limits(limits=1)
    _WORKER = (corpus, config)


def _fit_rows(rows: np.ndarray) -> Heads:
    corpus, config = _WORKER  # type: ignore[misc]
    return fit_model([corpus.articles[r] for r in rows], corpus, config)


class FitPool:
    """Fits heads on subsets of one training's articles, ``workers`` at a time (``config.workers``)."""

    def __init__(self, corpus: CorpusFeatures, config: TrainConfig, workers: int | None = None) -> None:
        self.corpus = corpus
        self.config = config
        self.workers = workers or config.workers
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> FitPool:
        if self.workers > 1:
            # spawn, not fork: the calling process may hold OpenVINO's and the tokenizer's threads.
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker, initargs=(self.corpus, self.config))
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def submit(self, articles: Sequence[Article]) -> Future[Heads]:
        """The heads learnt from ``articles``, as a future: fitted by the next free worker (at once, in this
        process, with one worker). Queue the longest fits first."""
        if self._executor is not None:
            return self._executor.submit(_fit_rows, self.corpus.rows(articles))
        done: Future[Heads] = Future()
        # With one BLAS thread, as in a worker: OpenBLAS splits a product differently with more threads, and the
        # heads would differ in the sixth digit from the same training run with workers.
        with threadpool_limits(limits=1):
            done.set_result(fit_model(articles, self.corpus, self.config))
        return done

    def fit(self, training_sets: Sequence[Sequence[Article]]) -> list[Heads]:
        """The heads learnt from each set of articles, in order."""
        return [future.result() for future in [self.submit(articles) for articles in training_sets]]
