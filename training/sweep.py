"""A small grid of training settings, each a child run of one MLflow parent run.

    python -m training.sweep [--grid full|small] [--config configs/train.yaml] [--experiment NAME]

Every child is a normal ``training.train.train`` (same folds, same reports, same metric names) with
registration switched off and its model folder in a temporary directory (the model is still logged to
its run): a sweep never touches ``models/`` or the registry's champion, which stay the main command's.
The parent run gets the tag ``best_child`` (run id) and the best child the tag ``best=true``, chosen by the
champion rule's composite score (``training.tracking.composite_score``: mean of cv sector macro-F1,
topics micro-F1 and region macro-F1).

``train()`` opens its own run with ``mlflow.start_run()``, which refuses to open inside an active run; so the
child run is created first (with its parent and tags) and ``train()`` resumes it through MLflow's
``MLFLOW_RUN_ID`` environment variable (see :func:`train_in_run`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from training.config import ConfigError, TrainConfig, load_config
from training.corpus import corpus_files, dataset_hash
from training.evaluation import HEADLINE_METRICS
from training.tracking import COMPOSITE_METRICS, composite_score, git_commit

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


@contextmanager
def _resume_with(run_id: str) -> Iterator[None]:
    previous = os.environ.get("MLFLOW_RUN_ID")
    os.environ["MLFLOW_RUN_ID"] = run_id
    try:
        yield
    finally:
        # mlflow.start_run() consumes the variable; restore whatever was there before.
        os.environ.pop("MLFLOW_RUN_ID", None)
        if previous is not None:
            os.environ["MLFLOW_RUN_ID"] = previous


def experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def train_in_run(config: TrainConfig, tags: dict[str, str], *, parent_run_id: str | None = None):
    """``training.train.train(config)`` logged into a run created beforehand with ``tags`` (and a parent).

    Returns the ``TrainingResult``. The run is marked FAILED if training raises before MLflow takes over.
    """
    from training.train import train

    uri = config.tracking.resolved_uri()
    client = MlflowClient(tracking_uri=uri)
    all_tags = dict(tags) | ({MLFLOW_PARENT_RUN_ID: parent_run_id} if parent_run_id else {})
    run = client.create_run(experiment_id(client, config.tracking.experiment), run_name=config.run_name,
                            tags=all_tags)
    try:
        with _resume_with(run.info.run_id):
            result = train(config)
    except BaseException:
        if client.get_run(run.info.run_id).info.status == RunStatus.to_string(RunStatus.RUNNING):
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    if result.run_id != run.info.run_id:  # a guard against an MLflow that stops honouring MLFLOW_RUN_ID
        raise RuntimeError(f"training logged into run {result.run_id}, not the prepared run {run.info.run_id}")
    return result


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
    grid = GRIDS[grid_name]
    points = grid_points(grid, base)
    uri = base.tracking.resolved_uri()
    client = MlflowClient(tracking_uri=uri)
    exp = experiment_id(client, base.tracking.experiment)
    data_hash = dataset_hash(corpus_files(base.datasets))
    parent = client.create_run(exp, run_name=f"sweep-{grid_name}", tags={
        "kind": "sweep", "sweep.grid": grid_name, "dataset_hash": data_hash, "git_commit": git_commit(),
    })
    parent_id = parent.info.run_id
    client.log_param(parent_id, "grid", json.dumps([p.name for p in points]))
    client.log_param(parent_id, "n_children", len(points))
    client.log_param(parent_id, "selection", "max composite: mean of " + ", ".join(COMPOSITE_METRICS))
    outcomes: list[ChildOutcome] = []
    try:
        for n, point in enumerate(points, 1):
            print(f"[sweep] {n}/{len(points)}: {point.name}", flush=True)
            with tempfile.TemporaryDirectory(prefix="sweep-model-") as models_dir:
                overrides = point.overrides() | {
                    "run_name": point.name, "models_dir": models_dir,
                    "tracking": {"register_model": False},
                }
                config = load_config(overrides=_merge_base(base, overrides))
                try:
                    result = train_in_run(config, {"kind": "sweep", "sweep.grid": grid_name},
                                          parent_run_id=parent_id)
                except Exception as exc:  # noqa: BLE001 - one failed point must not lose the others
                    log.exception("sweep point %s failed", point.name)
                    outcomes.append(ChildOutcome(point, None, {}, error=f"{type(exc).__name__}: {exc}"))
                    continue
            metrics = {f"cv.{k}": v for k, v in result.cv.metrics.items()}
            metrics |= {f"seed.{k}": v for k, v in result.seed.metrics.items()}
            outcomes.append(ChildOutcome(point, result.run_id, metrics))
            print(f"[sweep]   composite {outcomes[-1].composite:.4f}  run {result.run_id}", flush=True)
        scored = [o for o in outcomes if o.composite is not None]
        best = max(scored, key=lambda o: o.composite, default=None)  # ties: the first in grid order
        if best is not None:
            client.set_tag(best.run_id, "best", "true")
            client.set_tag(parent_id, "best_child", best.run_id)
            client.set_tag(parent_id, "best_child_name", best.point.name)
            client.log_metric(parent_id, "best.composite_cv", round(best.composite, 4))
            for key in [f"{p}.{m}" for p in ("cv", "seed") for m in HEADLINE_METRICS]:
                if key in best.metrics:
                    client.log_metric(parent_id, f"best.{key}", best.metrics[key])
        failed = [o for o in outcomes if o.error]
        client.set_tag(parent_id, "n_failed", str(len(failed)))
        status = RunStatus.FAILED if failed or best is None else RunStatus.FINISHED
        client.set_terminated(parent_id, RunStatus.to_string(status))
    except BaseException:
        client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    return parent_id, outcomes, best


def _merge_base(base: TrainConfig, overrides: dict) -> dict:
    """The base configuration as a dict with the point's settings on top (validated again by load_config)."""
    from training.config import _merge

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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description="Train a grid of settings as nested MLflow runs.")
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
