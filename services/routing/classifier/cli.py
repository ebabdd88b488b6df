"""``hotline classify train|evaluate|predict``: the classifier's command-line front.

The lead's ``hotline`` command calls ``add_cli(subparsers)``; this module also runs on its
own: ``python -m services.routing.classifier.cli classify ...``.
Errors the user can fix (missing column, empty file, too few examples of a label, model
folder of another format version) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def add_cli(subparsers: Any) -> None:
    """Register ``classify`` and its actions on an ``ArgumentParser``'s subparsers."""
    p = subparsers.add_parser("classify", help="ticket classifier: train, evaluate, predict",
                              description="Chinese ticket classifier with calibrated confidence "
                                          "(see docs/classifier.md)")
    actions = p.add_subparsers(dest="classify_action", required=True, metavar="{train,evaluate,predict,retrain}")

    t = actions.add_parser("train", help="train a model folder from labelled tickets (CSV, or XLSX with openpyxl)")
    _data_args(t)
    t.add_argument("--out", required=True, type=Path, help="model folder to write")
    t.add_argument("--label-descriptions", "--taxonomy", dest="descriptions", type=Path, default=None,
                   help="CSV whose first column is a label and whose other columns describe it (a category "
                        "tree such as taxonomy.csv); each row becomes a short training example. Default: "
                        "taxonomy.csv beside --data, if there is one")
    t.add_argument("--no-label-descriptions", dest="auto_descriptions", action="store_false",
                   help="do not look for taxonomy.csv beside --data")
    t.add_argument("--cv-folds", type=int, default=5,
                   help="outer cross-validation folds for the reported scores and the threshold (0: skip)")
    t.add_argument("--target-precision", type=float, default=0.95,
                   help="the abstain threshold is the lowest confidence that keeps this precision (default 0.95)")
    t.add_argument("--min-per-label", type=int, default=10, help="fewest examples a label may have (default 10)")
    t.add_argument("--svc-c", default="1,0.5,2",
                   help="SVM C values model selection chooses among on inner folds (default 1,0.5,2; one value: "
                        "no selection)")
    t.add_argument("--hold-out", type=float, default=0.0, metavar="FRACTION",
                   help="hold back this fraction of the rows (deterministic, stratified, grouped), train on the "
                        "rest and score the model once on them; the folder then holds that model (default 0: off)")
    t.add_argument("--hold-out-salt", default="holdout-v1", help="changes which rows are held back")
    t.add_argument("--id-column", default=None, help="column naming a row, hashed to pick held-back rows "
                                                     "(default: the row's text)")
    t.add_argument("--group-column", default=None,
                   help="rows sharing this column (e.g. the author) stay on one side of the hold-out split")
    t.add_argument("--unlabelled", type=Path, action="append", default=[],
                   help="tickets without labels (same text columns) for self-training; repeat for several files")
    t.add_argument("--self-train-per-label", type=int, default=100,
                   help="pseudo-labelled tickets per label taken from --unlabelled (default 100; 0: off)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_guarded(_train))

    e = actions.add_parser("evaluate", help="score a model on labelled tickets; last stdout line is JSON")
    e.add_argument("--model", required=True, type=Path, help="model folder")
    _data_args(e)
    e.add_argument("--threshold", type=float, default=None, help="abstain threshold (default: the model's)")
    e.add_argument("--target-precision", type=float, default=0.95)
    e.set_defaults(func=_guarded(_evaluate))

    r = actions.add_parser("predict", help="classify one ticket text")
    r.add_argument("--model", required=True, type=Path, help="model folder")
    r.add_argument("--text", required=True, action="append",
                   help="ticket text: title, newline, body (a single line counts its first sentence as title); "
                        "repeat for several tickets")
    r.add_argument("--threshold", type=float, default=None, help="abstain threshold (default: the model's)")
    r.add_argument("--json", action="store_true", help="one JSON object per ticket")
    r.set_defaults(func=_guarded(_predict))

    rt = actions.add_parser("retrain", help="learn from the office's decisions; promote the candidate only when "
                                            "it beats the current model on recent decisions")
    rt.add_argument("--model", required=True, type=Path, help="model folder (current model; replaced on promotion)")
    source = rt.add_mutually_exclusive_group(required=True)
    source.add_argument("--decisions", type=Path,
                        help="office decisions: .jsonl or .csv with text (or title, content), category, decided_at "
                             "[, ticket_id, kind]")
    source.add_argument("--from-store", action="store_true",
                        help="read the office's decisions from routing's store (collection examples: every office "
                             "dispatch, approved re-dispatch and recategorisation), per the HOTLINE_* settings")
    rt.add_argument("--seed-data", type=Path, default=None,
                    help="labelled seed tickets (default: the data the current model records, if still there)")
    rt.add_argument("--text-columns", default=None, help="seed data text columns, title first")
    rt.add_argument("--label-column", default=None, help="seed data label column")
    rt.add_argument("--label-descriptions", "--taxonomy", dest="descriptions", type=Path, default=None,
                    help="category tree (default: taxonomy.csv beside the seed data)")
    rt.add_argument("--label-map", type=Path, default=None, help="label map (default: services/routing/data/"
                                                                 "label_map.json)")
    rt.add_argument("--recent-fraction", type=float, default=0.2,
                    help="newest share of the decisions held back to compare on (default 0.2)")
    rt.add_argument("--min-recent", type=int, default=20, help="fewest recent decisions to compare on (default 20)")
    rt.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy")
    rt.add_argument("--min-gain", type=float, default=0.0,
                    help="promote only when the candidate beats the current model by more than this (default 0)")
    rt.add_argument("--cv-folds", type=int, default=0, help="outer cross-validation of the candidate (default 0)")
    rt.add_argument("--svc-c", default="1", help="SVM C values to select among (default 1)")
    rt.add_argument("--dry-run", action="store_true", help="compare only; never promote")
    rt.set_defaults(func=_guarded(_retrain))


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="labelled tickets: CSV (UTF-8 or GB18030) or XLSX")
    p.add_argument("--text-columns", required=True, help="comma-separated text columns, title first (e.g. A,B)")
    p.add_argument("--label-column", required=True, help="column holding the label")


def _guarded(action: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from services.routing.classifier.errors import ClassifierError

        try:
            return int(action(args))
        except ClassifierError as exc:
            print(f"hotline classify {args.classify_action}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as exc:  # e.g. a threshold outside [0, 1]
            print(f"hotline classify {args.classify_action}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    from services.routing.classifier.data import split_columns
    from services.routing.classifier.training import HoldOut, TrainConfig, train

    if not 0.0 < args.target_precision <= 1.0:
        raise ValueError("--target-precision must lie in (0, 1]")
    if args.cv_folds == 1 or args.cv_folds < 0:
        raise ValueError("--cv-folds must be 0 (skip) or at least 2")
    if args.min_per_label < 2:
        raise ValueError("--min-per-label must be at least 2")
    grid = _grid(args.svc_c)
    if args.hold_out and not 0.0 < args.hold_out < 1.0:
        raise ValueError("--hold-out must lie in (0, 1)")
    hold_out = HoldOut(args.hold_out, args.hold_out_salt, args.id_column, args.group_column) if args.hold_out else None
    cfg = TrainConfig(cv_folds=args.cv_folds, seed=args.seed, target_precision=args.target_precision,
                      min_per_label=args.min_per_label, svc_c=grid[0], svc_c_grid=grid,
                      self_train_per_label=args.self_train_per_label)
    meta = train(args.data, split_columns(args.text_columns), args.label_column.strip(), args.out,
                 descriptions=args.descriptions, auto_descriptions=args.auto_descriptions, config=cfg, log=_err,
                 hold_out=hold_out, unlabelled=args.unlabelled)
    cv, th = meta.get("cv"), meta["threshold"]
    print(f"model        {args.out} ({meta['model_version']}, {meta['sizes']['model_bytes'] / 1e6:.1f} MB)")
    print(f"trained on   {meta['data']['rows_used']} tickets, {len(meta['labels'])} labels, "
          f"{meta['training_seconds']:.1f} s")
    grid_text = ", ".join(f"{c['svc_c']:g}" for c in meta["selection"]["candidates"])
    print(f"selected     C={meta['selection']['chosen']['svc_c']:g} of {grid_text} (inner folds)")
    st = meta["selection"].get("self_training")
    if st:
        print(f"self-trained {st['pseudo_labelled']} pseudo-labelled of {st['unlabelled_tickets']} unlabelled tickets "
              f"(at most {st['per_label']} per label, confidence >= {st['min_confidence']}, weight {st['weight']})")
    if cv:
        print(f"{cv['folds']}-fold CV   accuracy {cv['accuracy']:.4f}, macro-F1 {cv['macro_f1']:.4f}, "
              f"ECE {cv['ece']:.4f} (nested: selection inside every fold)")
    if meta.get("holdout"):
        ho = meta["holdout"]
        print(f"held back    {ho['rows']} rows never seen by training or selection: accuracy {ho['accuracy']:.4f}, "
              f"macro-F1 {ho['macro_f1']:.4f}")
    coverage = f", automatic {th['coverage']:.1%}" if th.get("coverage") is not None else ""
    print(f"threshold    {th['value']:.4f} (precision >= {th['target_precision']:.0%}{coverage}; "
          "below it: manual dispatch)")
    return 0


def _grid(spec: str) -> tuple[float, ...]:
    from services.routing.classifier.data import split_columns

    try:
        grid = tuple(float(c) for c in split_columns(spec))
    except ValueError:
        raise ValueError(f"--svc-c: not a list of numbers: {spec!r}") from None
    if not grid or min(grid) <= 0:
        raise ValueError("--svc-c needs positive numbers")
    return grid


def _retrain(args: argparse.Namespace) -> int:
    from services.routing.classifier.data import split_columns
    from services.routing.classifier.label_map import LabelMap
    from services.routing.classifier.retrain import SeedData, load_decisions, retrain
    from services.routing.classifier.training import TrainConfig

    if args.cv_folds == 1 or args.cv_folds < 0:
        raise ValueError("--cv-folds must be 0 (skip) or at least 2")
    seed = None
    if args.seed_data:
        if not args.text_columns or not args.label_column:
            raise ValueError("--seed-data needs --text-columns and --label-column")
        seed = SeedData(args.seed_data, split_columns(args.text_columns), args.label_column.strip())
    grid = _grid(args.svc_c)
    cfg = TrainConfig(cv_folds=args.cv_folds, svc_c=grid[0], svc_c_grid=grid)
    label_map = LabelMap.load(args.label_map) if args.label_map else LabelMap.load()
    decisions = load_decisions(store_examples() if args.from_store else args.decisions)
    r = retrain(args.model, decisions, seed, args.descriptions, label_map, cfg, args.recent_fraction,
                args.min_recent, args.min_gain, args.metric, args.dry_run, log=_err)
    print(f"decisions    {len(decisions)} (latest per ticket); candidate trained on {r.trained_on['decisions']} "
          f"older ones + {r.trained_on['seed_rows']} seed rows")
    print(f"compared on  {r.recent} recent decisions, {r.recent_from} .. {r.recent_to} (not in the candidate's "
          f"training), label map {label_map.version}")
    print(f"\n{'model':<12}{'version':<16}{'accuracy':>10}{'macro-F1':>10}{'automatic':>11}{'precision':>11}")
    for name, sc in (("current", r.current), ("candidate", r.candidate)):
        if sc is None:
            print(f"{name:<12}{'-':<16}{'-':>10}{'-':>10}{'-':>11}{'-':>11}")
            continue
        prec = "-" if sc.precision_at_threshold is None else f"{sc.precision_at_threshold:.4f}"
        print(f"{name:<12}{sc.model_version:<16}{sc.accuracy:>10.4f}{sc.macro_f1:>10.4f}{sc.coverage:>11.1%}"
              f"{prec:>11}")
    verdict = "PROMOTED" if r.promoted else "not promoted"
    where = f": {args.model} is now {r.candidate.model_version}" if r.promoted else \
        f"; {args.model} unchanged"
    print(f"\n{verdict} ({r.reason}){where}")
    print(json.dumps(r.as_dict(), ensure_ascii=False))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from services.routing.classifier.data import load_examples, split_columns
    from services.routing.classifier.evaluation import format_report, summarize
    from services.routing.classifier.model import load_model

    model = load_model(args.model, threshold=args.threshold)
    ex = load_examples(args.data, split_columns(args.text_columns), args.label_column.strip())
    unknown = sorted(set(ex.labels) - set(model.labels))
    if unknown:
        _err(f"note: labels the model does not know (always counted wrong): {', '.join(unknown)}")
    model.predict_proba(ex.texts[:8])  # warm-up, not timed
    started = time.perf_counter()
    probs = model.predict_proba(ex.texts)
    elapsed = time.perf_counter() - started
    summary = summarize(ex.labels, probs, model.labels, args.target_precision, model.threshold)
    print(f"model             {args.model} ({model.model_version})")
    print(format_report(summary))
    docs_per_second = len(ex.texts) / elapsed if elapsed > 0 else float("inf")
    print(f"\nprediction        {docs_per_second:,.0f} tickets/s (batch, model loading excluded)")
    result = {"accuracy": round(summary["accuracy"], 6), "macro_f1": round(summary["macro_f1"], 6),
              "docs_per_second": round(docs_per_second, 1), "n": summary["n"],
              "log_loss": round(summary["log_loss"], 6), "ece": round(summary["ece"], 6),
              "threshold": round(model.threshold, 6), "coverage": round(summary["coverage"], 6),
              "precision_at_threshold": _num(summary["precision_at_threshold"]),
              "threshold_for_precision_target": round(summary["threshold_for_target"], 6),
              "coverage_at_precision_target": round(summary["coverage_at_target"], 6),
              "model_version": model.model_version}
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _num(x: float) -> float | None:
    return None if x != x else round(x, 6)


def _predict(args: argparse.Namespace) -> int:
    from services.routing.classifier.model import load_model

    model = load_model(args.model, threshold=args.threshold)
    for p in model.predict_batch([t.replace("\\n", "\n") for t in args.text]):
        if args.json:
            print(json.dumps({"label": p.label, "confidence": round(p.confidence, 6),
                              "runner_up": [[lab, round(c, 6)] for lab, c in p.runner_up],
                              "abstained": p.abstained, "threshold": round(model.threshold, 6),
                              "model_version": p.model_version}, ensure_ascii=False))
            continue
        print(f"label        {p.label}")
        print(f"confidence   {p.confidence:.4f}")
        print("runner-up    " + (", ".join(f"{lab} {c:.4f}" for lab, c in p.runner_up) or "-"))
        decision = "yes: manual dispatch (人工派单)" if p.abstained else "no: decided automatically"
        print(f"abstain      {decision} (threshold {model.threshold:.4f})")
        print(f"model        {p.model_version}")
        if len(args.text) > 1:
            print()
    return 0


def store_examples(settings: Any = None) -> list[dict[str, Any]]:
    """The labelled examples routing's desk stored (services/routing/store.py DeskStore)."""
    from hotline import mongo
    from hotline.settings import Settings

    settings = settings or Settings()
    client = mongo.sync_client(settings)
    try:
        db = client[f"{settings.mongo.database_prefix}_routing"]
        return list(db["examples"].find({}, {"_id": 0}).sort("decided_at", 1))
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
