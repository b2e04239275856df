"""A small grid of training settings, each a child run of one MLflow parent run.

    newsclf sweep [--grid full|small] [--config configs/train.yaml] [--experiment NAME]

Every child is a normal training (``training.pipeline.train`` recorded by ``training.tracking.record_training``:
same folds, same reports, same metric names) in a nested run of the sweep's parent run, with
registration switched off and its model folder in a temporary directory (the model is still logged to
its run): a sweep never touches ``models/`` or the registry's champion, which stay the main command's.
The parent run gets the tag ``best_child`` (run id) and the best child the tag ``best=true``, chosen by the
champion rule's composite score (``training.tracking.composite_score``: mean of cv sector macro-F1,
topics micro-F1 and region macro-F1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from training.config import ConfigError, TrainConfig, _merge, load_config
from training.evaluation import HEADLINE_METRICS
from training.pipeline import train
from training.records import corpus_files, dataset_hash
from training.tracking import COMPOSITE_METRICS, composite_score, git_commit, record_training, start_run

log = logging.getLogger("training.sweep")

HEADS = ("sector", "topics", "region")
FULL_GRID: dict[str, tuple] = {
    "C": (1.0, 4.0, 16.0),
    "class_weight": ("balanced", None),
    "long_text": ("windows", "truncate"),
    "clean": (True, False),
}
# For CI: four runs at the base configuration's embedding settings (long_text, clean), so that nothing new is
# embedded; its C=4/balanced point is the default pipeline.
SMALL_GRID: dict[str, tuple] = {
    "C": (4.0, 16.0),
    "class_weight": ("balanced", None),
    "long_text": (None,),  # None: the base configuration's
    "clean": (None,),
}
GRIDS = {"full": FULL_GRID, "small": SMALL_GRID}

EXAMPLES = """examples:
  newsclf sweep --grid small                     # 4 runs: C x class_weight at the base embedding settings
  newsclf sweep --grid full --experiment sweeps  # 24 runs
"""


@dataclass(frozen=True)
class Point:
    C: float
    class_weight: str | None
    long_text: str
    clean: bool

    @property
    def name(self) -> str:
        return (f"C={self.C:g} class_weight={self.class_weight or 'none'} "
                f"long_text={self.long_text} clean={'on' if self.clean else 'off'}")

    def overrides(self) -> dict:
        heads = {head: {"C": self.C, "class_weight": self.class_weight} for head in HEADS}
        return heads | {"embedder": {"long_text": self.long_text}, "clean": self.clean}


def grid_points(grid: dict[str, tuple], base: TrainConfig) -> list[Point]:
    # Embedding settings vary slowest: consecutive children share their embeddings.
    return [
        Point(C, cw, base.embedder.long_text if lt is None else lt, base.clean if cl is None else cl)
        for lt, cl, C, cw in itertools.product(grid["long_text"], grid["clean"], grid["C"], grid["class_weight"])
    ]


@dataclass
class ChildOutcome:
    point: Point
    run_id: str | None
    metrics: dict[str, float]
    error: str | None = None

    @property
    def composite(self) -> float | None:
        if self.error or not all(m in self.metrics for m in COMPOSITE_METRICS):
            return None
        return composite_score(self.metrics)


def run_sweep(base: TrainConfig, grid_name: str) -> tuple[str, list[ChildOutcome], ChildOutcome | None]:
    """Train every point of the grid as a child of a new parent run; returns (parent id, children, best)."""
    points = grid_points(GRIDS[grid_name], base)
    data_hash = dataset_hash(corpus_files(base.datasets))
    outcomes: list[ChildOutcome] = []
    parent_tags = {"kind": "sweep", "sweep.grid": grid_name, "dataset_hash": data_hash, "git_commit": git_commit()}
    with start_run(base, run_name=f"sweep-{grid_name}", tags=parent_tags) as parent:
        mlflow.log_params({"grid": json.dumps([p.name for p in points]), "n_children": len(points),
                           "selection": "max composite: mean of " + ", ".join(COMPOSITE_METRICS)})
        for n, point in enumerate(points, 1):
            print(f"[sweep] {n}/{len(points)}: {point.name}", flush=True)
            outcomes.append(_train_child(base, point, grid_name))
            if outcomes[-1].composite is not None:
                print(f"[sweep]   composite {outcomes[-1].composite:.4f}  run {outcomes[-1].run_id}", flush=True)
        scored = [o for o in outcomes if o.composite is not None]
        best = max(scored, key=lambda o: o.composite, default=None)  # ties: the first in grid order
        client = MlflowClient(tracking_uri=base.tracking.resolved_uri())
        if best is not None:
            client.set_tag(best.run_id, "best", "true")
            mlflow.set_tags({"best_child": best.run_id, "best_child_name": best.point.name})
            mlflow.log_metric("best.composite_cv", round(best.composite, 4))
            mlflow.log_metrics({f"best.{key}": best.metrics[key]
                                for key in (f"{p}.{m}" for p in ("cv", "seed") for m in HEADLINE_METRICS)
                                if key in best.metrics})
        failed = [o for o in outcomes if o.error]
        mlflow.set_tag("n_failed", str(len(failed)))
        if failed or best is None:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
    return parent.info.run_id, outcomes, best


def _train_child(base: TrainConfig, point: Point, grid_name: str) -> ChildOutcome:
    """One point of the grid in a nested run; a failure is recorded (run FAILED) and returned, not raised."""
    with tempfile.TemporaryDirectory(prefix="sweep-model-") as models_dir:
        overrides = point.overrides() | {"run_name": point.name, "models_dir": models_dir,
                                         "tracking": {"register_model": False}}
        config = load_config(overrides=_merge_base(base, overrides))
        with start_run(config, nested=True, tags={"kind": "sweep", "sweep.grid": grid_name}) as run:
            try:
                result = train(config)
                record_training(result, config, kind="sweep")
            except Exception as exc:  # noqa: BLE001 - one failed point must not lose the others
                log.exception("sweep point %s failed", point.name)
                mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
                return ChildOutcome(point, run.info.run_id, {}, error=f"{type(exc).__name__}: {exc}")
    return ChildOutcome(point, run.info.run_id, result.metrics)


def _merge_base(base: TrainConfig, overrides: dict) -> dict:
    """The base configuration as a dict with the point's settings on top (validated again by load_config)."""
    data = base.model_dump(mode="python")
    return _merge(data, overrides)


def format_outcomes(outcomes: list[ChildOutcome], best: ChildOutcome | None) -> str:
    cols = ("cv.sector.macro_f1", "cv.topics.micro_f1", "cv.region.macro_f1", "cv.partners.micro_f1")
    lines = [f"{'run':<58}{'composite':>10}" + "".join(f"{c.removeprefix('cv.'):>20}" for c in cols)]
    for o in outcomes:
        mark = " *" if o is best else ""
        if o.error:
            lines.append(f"{o.point.name + mark:<58}{'failed':>10}  {o.error[:80]}")
            continue
        lines.append(f"{o.point.name + mark:<58}{o.composite:>10.4f}"
                     + "".join(f"{o.metrics.get(c, float('nan')):>20.4f}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog=prog, description="Train a grid of settings as nested MLflow runs.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full",
                        help="full: C x class_weight x long_text x clean (24 runs); small: C x class_weight at the "
                             "base long_text and clean (4 runs, for CI)")
    parser.add_argument("--config", type=Path, help="base settings (YAML); the grid overrides its keys")
    parser.add_argument("--experiment", help="MLflow experiment (default: the config's, 'newsclf')")
    args = parser.parse_args(argv)
    overrides = {"tracking": {"experiment": args.experiment}} if args.experiment else {}
    try:
        base = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    points = grid_points(GRIDS[args.grid], base)
    print(f"[sweep] {len(points)} runs ({args.grid} grid) into {base.tracking.resolved_uri()}, "
          f"experiment {base.tracking.experiment}", flush=True)
    parent_id, outcomes, best = run_sweep(base, args.grid)
    print()
    print(format_outcomes(outcomes, best))
    print()
    print(f"parent run: {parent_id}")
    if best is not None:
        print(f"best child (tag best=true): {best.run_id}  {best.point.name}  composite {best.composite:.4f}")
    failed = [o for o in outcomes if o.error]
    if failed:
        print(f"{len(failed)} run(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
