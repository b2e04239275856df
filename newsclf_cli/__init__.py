"""The ``newsclf`` command: one entry point, one subcommand per job.

It sits above ``training``, ``serving`` and the core ``newsclf`` and only dispatches. Each subcommand's module is
imported when it runs, so that ``newsclf --help`` does not pay for torch and MLflow.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv, prog), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.train", "train on the bundled corpus, record the run in MLflow, register the model"),
    "validate": ("training.validate_corpus", "check the labelled corpus against the taxonomy and print its counts"),
    "agreement": ("training.agreement", "Cohen's kappa of the two independent annotations of the corpus sample"),
    "baselines": ("training.baselines", "score the TF-IDF, zero-shot and SetFit baselines on the pipeline's folds"),
    "sweep": ("training.sweep", "train a grid of settings as nested MLflow runs"),
    "promote": ("training.promote", "move the registry's champion alias to a version, or roll it back"),
    "serve": ("serving.__main__", "serve the HTTP API (the newest model, or NEWSCLF_MODEL)"),
    "classify": ("newsclf.cli", "classify a JSON Lines or CSV file of articles with a trained model"),
    "feedback": ("training.feedback_export", "export analysts' corrections (feedback.db) as corpus JSON Lines"),
    "spark-score": ("newsclf.spark_job", "score an archive (Parquet, JSON Lines, CSV) with Spark and the registered "
                                         "model"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: newsclf <command> [options]   (newsclf <command> --help for its options and examples)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "examples:", "  newsclf train", "  newsclf serve",
              "  newsclf classify articles.jsonl -o labels.jsonl",
              "  newsclf spark-score --input archive.parquet --output labels --master 'local[2]'",
              "  newsclf promote --rollback"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"newsclf: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"newsclf {name}")
