"""Move the registry's ``champion`` alias by hand: to a given version, or back to the previous champion.

    newsclf promote --version N      # make version N the champion
    newsclf promote --rollback       # give the alias back to the champion before the current one

The serving side resolves ``models:/<name>@champion``, so this is a promotion or a rollback without a
retraining. The champion history is kept in the registered model's tag ``champion_history`` (a JSON list of
versions, oldest first). When the tag does not exist yet, the history is rebuilt by replaying the automatic
champion rule of ``training.tracking`` over the registered versions in order (their ``composite_cv_score``
and ``dataset_hash`` tags), which is exactly what ``newsclf train`` did when it registered them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.config import load_config
from training.tracking import CHAMPION, set_alias

HISTORY_TAG = "champion_history"

EXAMPLES = """examples:
  newsclf promote --version 3                    # make version 3 the champion
  newsclf promote --rollback                     # back to the champion before the current one
"""


@dataclass(frozen=True)
class Change:
    name: str
    previous: str | None
    current: str
    history: list[str]


def _versions(client: MlflowClient, name: str) -> list:
    return sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))


def _current(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def replayed_history(versions: list) -> list[str]:
    """The champions the automatic rule chose, in order, from the versions' tags."""
    history: list[str] = []
    best_score, best_hash = None, None
    for v in versions:
        score, data_hash = v.tags.get("composite_cv_score"), v.tags.get("dataset_hash")
        if score is None:
            continue  # registered without the rule (by hand): never promoted automatically
        if best_score is None or data_hash != best_hash or float(score) >= best_score:
            history.append(str(v.version))
            best_score, best_hash = float(score), data_hash
    return history


def champion_history(client: MlflowClient, name: str) -> list[str]:
    model = client.get_registered_model(name)
    if HISTORY_TAG in model.tags:
        history = [str(v) for v in json.loads(model.tags[HISTORY_TAG])]
    else:
        history = replayed_history(_versions(client, name))
    current = _current(client, name)
    if current is not None and (not history or history[-1] != current):
        history.append(current)  # promoted since the history was last written (by a training)
    return history


def promote(tracking_uri: str, name: str, version: str) -> Change:
    client = MlflowClient(tracking_uri=tracking_uri)
    history = champion_history(client, name)
    previous = _current(client, name)
    set_alias(tracking_uri, name, version)
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return Change(name, previous, str(version), history)


def rollback(tracking_uri: str, name: str) -> Change:
    client = MlflowClient(tracking_uri=tracking_uri)
    history = champion_history(client, name)
    previous = _current(client, name)
    if previous is None:
        raise LookupError(f"{name} has no {CHAMPION} to roll back from")
    while history and history[-1] == previous:
        history.pop()
    if not history:
        raise LookupError(f"{name} v{previous} is the first champion on record: there is nothing to roll back to")
    target = history[-1]
    set_alias(tracking_uri, name, target)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return Change(name, previous, target, history)


def describe(client: MlflowClient, name: str, version: str | None) -> str:
    if version is None:
        return "none"
    v = client.get_model_version(name, version)
    return (f"v{version} (run {v.run_id}, composite CV {v.tags.get('composite_cv_score', '?')}, "
            f"dataset {v.tags.get('dataset_hash', '?')[:12]})")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Set the registry's champion alias by hand.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--version", help="registered version to make the champion")
    what.add_argument("--rollback", action="store_true", help="back to the champion before the current one")
    parser.add_argument("--name", help="registered model (default: the config's, 'newsclf')")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else the repository's mlflow.db")
    args = parser.parse_args(argv)
    tracking = load_config().tracking
    uri = args.tracking_uri or tracking.resolved_uri()
    name = args.name or tracking.registered_model
    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_registered_model(name)
        change = rollback(uri, name) if args.rollback else promote(uri, name, str(args.version))
    except (MlflowException, LookupError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        print(f"error: {message} ({uri})", file=sys.stderr)
        return 2
    print(f"{name}@{CHAMPION} in {uri}")
    if change.previous == change.current:
        print(f"  unchanged: {describe(client, name, change.current)}")
    else:
        print(f"  was: {describe(client, name, change.previous)}")
        print(f"  now: {describe(client, name, change.current)}")
        old, new = (client.get_model_version(name, v) if v else None for v in (change.previous, change.current))
        if old is not None and old.tags.get("dataset_hash") != new.tags.get("dataset_hash"):
            print("  note: the two versions were evaluated on different corpora; their scores are not comparable")
    print(f"  champion history: {' -> '.join('v' + v for v in change.history)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
