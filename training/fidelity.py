"""The fidelity gate: which embedding backends may be the default, measured against torch fp32.

A backend passes when, against the torch fp32 vectors of the same prepared documents:
- per language, the mean cosine is >= 0.99 and the minimum >= 0.97, over the whole corpus;
- grouped cross-validation with its vectors gives the same sector and the same region as with fp32 vectors on
  >= 99% of the written articles (out-of-fold predictions, the same folds);
- its grouped-CV composite score (``training.tracking.composite_score``) is within 0.005 of fp32's.

``python -m training.fidelity [--backends ...] [--sample N]`` prints the figures of each backend and whether it
passes; the README's table comes from it. Among the backends that pass, the default is the fastest one measured by
``benchmarks/bench_backends.py``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from newsclf.backends import BACKENDS
from newsclf.embedding import Embedder
from newsclf.predictor import Prediction, prepare_documents
from training.config import TrainConfig, load_config
from training.evaluation import Evaluation, cross_validate
from training.pipeline import load_training_data
from training.records import Article
from training.tracking import composite_score

REFERENCE = "torch"
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
MIN_LABEL_AGREEMENT = 0.99
MAX_COMPOSITE_DELTA = 0.005


@dataclass
class GateResult:
    backend: str
    cosine: dict[str, tuple[float, float, int]]  # language -> (mean, min, articles)
    sector_agreement: float
    region_agreement: float
    composite: float
    composite_delta: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def line(self) -> str:
        cos = "  ".join(f"{lang} {m:.5f}/{lo:.5f}" for lang, (m, lo, _n) in sorted(self.cosine.items()))
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.failures)
        return (f"{self.backend:<19} cos mean/min {cos}  sector {self.sector_agreement:.2%}  region "
                f"{self.region_agreement:.2%}  composite {self.composite:.4f} ({self.composite_delta:+.4f})  {verdict}")


def cosine_by_language(reference: np.ndarray, candidate: np.ndarray,
                       languages: Sequence[str]) -> dict[str, tuple[float, float, int]]:
    """Per language: mean and minimum cosine between matching rows (rows are unit vectors)."""
    cos = np.sum(reference * candidate, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1))
    langs = np.asarray(languages)
    return {lang: (float(cos[langs == lang].mean()), float(cos[langs == lang].min()), int((langs == lang).sum()))
            for lang in sorted(set(languages))}


def label_agreement(reference: Sequence[Prediction], candidate: Sequence[Prediction], head: str) -> float:
    same = [getattr(r, head).label == getattr(c, head).label for r, c in zip(reference, candidate, strict=True)]
    return float(np.mean(same)) if same else 1.0


def judge(backend: str, cosine: dict[str, tuple[float, float, int]], reference: Evaluation,
          candidate: Evaluation) -> GateResult:
    ref_composite = composite_score({f"cv.{k}": v for k, v in reference.metrics.items()})
    composite = composite_score({f"cv.{k}": v for k, v in candidate.metrics.items()})
    result = GateResult(backend, cosine, label_agreement(reference.predictions, candidate.predictions, "sector"),
                        label_agreement(reference.predictions, candidate.predictions, "region"),
                        composite, composite - ref_composite)
    for lang, (mean, low, _n) in sorted(cosine.items()):
        if mean < MIN_MEAN_COSINE:
            result.failures.append(f"{lang} mean cosine {mean:.4f} < {MIN_MEAN_COSINE}")
        if low < MIN_COSINE:
            result.failures.append(f"{lang} min cosine {low:.4f} < {MIN_COSINE}")
    for head, agreement in (("sector", result.sector_agreement), ("region", result.region_agreement)):
        if agreement < MIN_LABEL_AGREEMENT:
            result.failures.append(f"{head} labels agree on {agreement:.2%} < {MIN_LABEL_AGREEMENT:.0%}")
    if abs(result.composite_delta) > MAX_COMPOSITE_DELTA:
        result.failures.append(f"composite differs by {result.composite_delta:+.4f} (> {MAX_COMPOSITE_DELTA})")
    return result


def _embedder(config: TrainConfig, backend: str) -> Embedder:
    return Embedder(config.embedder.model_copy(update={"backend": backend}), show_progress=False)


def run_gate(config: TrainConfig, backends: Sequence[str], *, articles: list[Article] | None = None,
             written: list[Article] | None = None, progress=print) -> list[GateResult]:
    """Cosines on ``articles`` (default: the whole corpus), cross-validation on ``written`` (default: the corpus's
    written articles), for each backend against torch fp32."""
    if articles is None or written is None:
        data = load_training_data(config)
        articles, written = articles or data.articles, written or data.written
    documents = prepare_documents(articles, clean=config.clean)
    languages = [a.lang for a in articles]
    reference_embedder = _embedder(config, REFERENCE)
    reference_vectors = reference_embedder.encode(documents)
    reference_cv = cross_validate(written, reference_embedder, config)
    results = []
    for backend in backends:
        if backend == REFERENCE:
            continue
        t0 = time.perf_counter()
        embedder = _embedder(config, backend)
        cosine = cosine_by_language(reference_vectors, embedder.encode(documents), languages)
        result = judge(backend, cosine, reference_cv, cross_validate(written, embedder, config))
        progress(result.line() + f"  [{time.perf_counter() - t0:.0f} s]")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description="Fidelity of each embedding backend to torch fp32 (the gate).")
    parser.add_argument("--backends", nargs="+", default=[b for b in BACKENDS if b != REFERENCE], choices=BACKENDS)
    parser.add_argument("--folds", type=int, help="cross-validation folds (default: the training configuration's)")
    args = parser.parse_args(argv)
    config = load_config(overrides={"cv": {"folds": args.folds}} if args.folds else None)
    print(f"fidelity gate against {REFERENCE} fp32: mean cosine >= {MIN_MEAN_COSINE} and min >= {MIN_COSINE} per "
          f"language; sector and region agree on >= {MIN_LABEL_AGREEMENT:.0%}; composite within "
          f"{MAX_COMPOSITE_DELTA}", flush=True)
    results = run_gate(config, args.backends, progress=lambda line: print(line, flush=True))
    return 0 if any(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
