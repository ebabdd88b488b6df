"""Training: two linear members on character n-grams, a stacker, a temperature, a threshold.

Pipeline (numbers are the defaults in ``TrainConfig``):

1. Features: TF-IDF of character 1-4-grams of the whole normalised text, plus TF-IDF of
   character 1-3-grams of the title (first line), scaled by 0.7. Vocabulary: n-grams seen
   in at least 2 training tickets.
2. Members: a linear SVM (LinearSVC, C=1, balanced class weights) and Complement naive
   Bayes (alpha=0.3). Optional label descriptions (a category tree such as taxonomy.csv)
   join the members' training data as one short example per row.
3. Stacking and calibration: 5-fold out-of-fold member scores train a multinomial logistic
   regression (C=0.1, balanced); a temperature fitted on the same out-of-fold scores
   makes its probabilities calibrated. Members are then refitted on all the data.
4. Everything above is linear in the features, so it is folded into one weight matrix.
5. Model selection: each candidate C (``svc_c_grid``) gets its own inner folds and stacker;
   the best inner out-of-fold macro-F1 wins. Optional self-training on unlabelled tickets
   follows with the chosen configuration.
6. Honest figures: the whole of 1-5 is cross-validated (5 outer folds, each with its own
   inner folds and its own selection: nested). The out-of-fold probabilities give the
   reported accuracy / macro-F1 / calibration and the abstain threshold: the lowest
   confidence at which the automatically decided tickets keep 95% precision. ``hold_out``
   keeps a deterministic part of the rows away from all of it and scores it once.
"""

from __future__ import annotations

import platform
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]
from scipy.optimize import minimize_scalar  # type: ignore[import-untyped, unused-ignore]

from services.routing.classifier import evaluation
from services.routing.classifier.data import Examples, load_examples, load_label_descriptions
from services.routing.classifier.errors import DataError
from services.routing.classifier.model import FORMAT_VERSION, save_model
from services.routing.classifier.text import CharNgramVectorizer, normalize, title_of

DESCRIPTIONS_FILE = "taxonomy.csv"  # looked for beside the data file when none is given
MISSING = -30.0  # score of a label that a member never saw


@dataclass(frozen=True)
class TrainConfig:
    body_ngrams: tuple[int, int] = (1, 4)
    title_ngrams: tuple[int, int] = (1, 3)
    min_df: int = 2
    title_weight: float = 0.7
    svc_c: float = 1.0
    svc_c_grid: tuple[float, ...] = (1.0, 0.5, 2.0)  # model selection chooses among these (inner folds)
    nb_alpha: float = 0.3
    stack_c: float = 0.1
    description_weight: float = 1.0
    self_train_per_label: int = 100  # with unlabelled tickets: pseudo-labels per label (0: no self-training)
    self_train_min_confidence: float = 0.9
    self_train_weight: float = 0.3
    inner_folds: int = 5
    cv_folds: int = 5  # 0: no outer cross-validation (faster; threshold from inner folds)
    seed: int = 0
    target_precision: float = 0.95
    min_per_label: int = 10
    n_jobs: int = 2  # outer folds trained at the same time (threads)


@dataclass
class _Linear:
    """logits = body_X @ w[:nb] + title_weight * title_X @ w[nb:] + bias"""

    body: CharNgramVectorizer
    title: CharNgramVectorizer
    weights: np.ndarray  # (vocabulary, outputs)
    bias: np.ndarray

    def features(self, bodies: Sequence[str], titles: Sequence[str], title_weight: float) -> sp.csr_matrix:
        return sp.hstack([self.body.transform(bodies), title_weight * self.title.transform(titles)]).tocsr()


class _Prepared:
    """Normalised bodies and titles of the training texts, computed once."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.bodies = [normalize(t) for t in texts]
        self.titles = [normalize(title_of(t)) for t in texts]

    def take(self, idx: np.ndarray) -> tuple[list[str], list[str]]:
        return [self.bodies[i] for i in idx], [self.titles[i] for i in idx]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def _full_classes(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray,
                  n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear model's (classes, features) weights, with binary and missing classes filled in."""
    if coef.shape[0] == 1 and classes.size == 2:  # binary: one row scores the second class
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    w = np.zeros((n_classes, coef.shape[1]), dtype=np.float64)
    b = np.full(n_classes, MISSING, dtype=np.float64)
    w[classes] = coef
    b[classes] = intercept
    return w, b


@dataclass(frozen=True)
class _Extra:
    """Rows every member trains on besides the labelled ones: label descriptions, pseudo-labels.

    They never shape the vocabulary and are never scored out of fold.
    """

    bodies: list[str]
    titles: list[str]
    y: np.ndarray
    weight: np.ndarray

    def __add__(self, other: _Extra) -> _Extra:
        return _Extra(self.bodies + other.bodies, self.titles + other.titles, np.concatenate([self.y, other.y]),
                      np.concatenate([self.weight, other.weight]))

    @property
    def size(self) -> int:
        return len(self.bodies)


def _fit_members(bodies: list[str], titles: list[str], y: np.ndarray, n_classes: int, extra: _Extra,
                 cfg: TrainConfig) -> _Linear:
    """Both members on one training set; returns their stacked scores as one linear map.

    Outputs: n_classes SVM decision values, then n_classes row-centred naive Bayes log
    likelihoods.
    """
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    body = CharNgramVectorizer(cfg.body_ngrams, cfg.min_df).fit(bodies)
    title = CharNgramVectorizer(cfg.title_ngrams, cfg.min_df).fit(titles)
    lin = _Linear(body, title, np.zeros(0), np.zeros(0))
    x = lin.features(bodies + extra.bodies, titles + extra.titles, cfg.title_weight)
    yy = np.concatenate([y, extra.y]).astype(np.int64)
    weight = np.concatenate([np.ones(len(bodies)), extra.weight])
    svc = LinearSVC(C=cfg.svc_c, class_weight="balanced", random_state=cfg.seed, max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear's ConvergenceWarning on separable toy data
        svc.fit(x, yy, sample_weight=weight)
    w_svc, b_svc = _full_classes(svc.coef_, svc.intercept_, svc.classes_, n_classes)
    nb = ComplementNB(alpha=cfg.nb_alpha).fit(x, yy, sample_weight=weight)
    flp = np.zeros((n_classes, x.shape[1]))
    flp[nb.classes_] = nb.feature_log_prob_
    flp[np.setdiff1d(np.arange(n_classes), nb.classes_)] = flp[nb.classes_].min()
    w_nb = flp - flp.mean(axis=0, keepdims=True)
    lin.weights = np.vstack([w_svc, w_nb]).T
    lin.bias = np.concatenate([b_svc, np.zeros(n_classes)])
    return lin


def _scores(lin: _Linear, bodies: Sequence[str], titles: Sequence[str], title_weight: float) -> np.ndarray:
    return lin.features(bodies, titles, title_weight) @ lin.weights + lin.bias  # type: ignore[no-any-return]


def _folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only N members"
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(y.size), y))


def _inner_oof(prep: _Prepared, idx: np.ndarray, y: np.ndarray, n_classes: int, extra: _Extra,
               cfg: TrainConfig) -> np.ndarray:
    """Out-of-fold member scores of the rows ``idx`` (inner folds): what the stacker learns from."""
    yi = y[idx]
    oof = np.zeros((idx.size, 2 * n_classes))
    for tr, te in _folds(yi, cfg.inner_folds, cfg.seed + 1):
        b, t = prep.take(idx[tr])
        lin = _fit_members(b, t, yi[tr], n_classes, extra, cfg)
        b, t = prep.take(idx[te])
        oof[te] = _scores(lin, b, t, cfg.title_weight)
    return oof


@dataclass
class _Stack:
    weights: np.ndarray  # (labels, member outputs)
    bias: np.ndarray
    temperature: float
    probs: np.ndarray  # calibrated probabilities of the out-of-fold scores it was fitted on


def _fit_stack(oof: np.ndarray, yi: np.ndarray, n_classes: int, cfg: TrainConfig) -> _Stack:
    """Multinomial logistic regression on the member scores, then one temperature (log-loss)."""
    from sklearn.linear_model import LogisticRegression

    stacker = LogisticRegression(C=cfg.stack_c, class_weight="balanced", max_iter=5000)
    stacker.fit(oof, yi)
    w_st, b_st = _full_classes(stacker.coef_, stacker.intercept_, stacker.classes_, n_classes)
    z = oof @ w_st.T + b_st
    rows = np.arange(yi.size)

    def nll(temp: float) -> float:
        zt = z * temp
        zt -= zt.max(axis=1, keepdims=True)
        return float(-np.mean(zt[rows, yi] - np.log(np.exp(zt).sum(axis=1))))

    temperature = float(minimize_scalar(nll, bounds=(0.01, 100.0), method="bounded").x)
    return _Stack(w_st, b_st, temperature, _softmax(z * temperature))


def _candidates(cfg: TrainConfig) -> list[TrainConfig]:
    """The configurations model selection chooses among (the first wins ties)."""
    grid = cfg.svc_c_grid or (cfg.svc_c,)
    return [replace(cfg, svc_c=float(c), svc_c_grid=()) for c in grid]


def _fit_pipeline(prep: _Prepared, idx: np.ndarray, y: np.ndarray, n_classes: int, extra: _Extra,
                  cfg: TrainConfig) -> tuple[_Linear, np.ndarray, TrainConfig, list[float]]:
    """Model selection, members, stacker and temperature on the rows ``idx``, folded into one linear model.

    Selection: every candidate configuration (``_candidates``) gets its inner out-of-fold
    scores and its stacker; the one whose calibrated out-of-fold probabilities have the best
    macro-F1 (ties: lower log-loss, then the first) is refitted on all of ``idx``. Only rows of
    ``idx`` are seen, so an outer fold that calls this measures the selection honestly.
    Returns the folded model, its in-sample out-of-fold probabilities, the chosen
    configuration and every candidate's selection score.
    """
    yi = y[idx]
    labels = [str(i) for i in range(n_classes)]
    best: tuple[float, float] | None = None
    chosen, stack, scores = cfg, None, []
    for cand in _candidates(cfg):
        st = _fit_stack(_inner_oof(prep, idx, y, n_classes, extra, cand), yi, n_classes, cand)
        truth = [labels[i] for i in yi]
        f1 = evaluation.macro_f1(truth, [labels[i] for i in st.probs.argmax(axis=1)])
        loss = evaluation.log_loss(st.probs, yi)
        scores.append(f1)
        if best is None or (f1, -loss) > best:
            best, chosen, stack = (f1, -loss), cand, st
    assert stack is not None
    b, t = prep.take(idx)
    members = _fit_members(b, t, yi, n_classes, extra, chosen)
    # logits = T * (scores @ w_st.T + b_st), scores = X @ members.weights + members.bias
    members.weights = stack.temperature * (members.weights @ stack.weights.T)
    members.bias = stack.temperature * (members.bias @ stack.weights.T + stack.bias)
    return members, stack.probs, chosen, scores


def _pseudo_labels(lin: _Linear, unlabelled: _Prepared, n_classes: int, cfg: TrainConfig) -> _Extra:
    """Self-training: the model's most confident unlabelled tickets, at most k per label."""
    if not unlabelled.bodies or cfg.self_train_per_label <= 0:
        return _Extra([], [], np.zeros(0, dtype=np.int64), np.zeros(0))
    probs = _softmax(_scores(lin, unlabelled.bodies, unlabelled.titles, cfg.title_weight))
    conf, label = probs.max(axis=1), probs.argmax(axis=1)
    chosen: list[int] = []
    for c in range(n_classes):
        rows = np.flatnonzero((label == c) & (conf >= cfg.self_train_min_confidence))
        chosen += rows[np.argsort(-conf[rows], kind="stable")][: cfg.self_train_per_label].tolist()
    idx = np.array(sorted(chosen), dtype=np.int64)
    b, t = unlabelled.take(idx)
    return _Extra(b, t, label[idx], np.full(idx.size, cfg.self_train_weight))


def _fit_procedure(prep: _Prepared, idx: np.ndarray, y: np.ndarray, n_classes: int, extra: _Extra,
                   unlabelled: _Prepared | None, cfg: TrainConfig,
                   ) -> tuple[_Linear, np.ndarray, TrainConfig, list[float], int]:
    """The whole procedure on the rows ``idx``: selection and fit, then (given unlabelled
    tickets) one round of self-training with the selected configuration. Also returns the
    number of pseudo-labelled tickets used."""
    lin, probs, chosen, scores = _fit_pipeline(prep, idx, y, n_classes, extra, cfg)
    if unlabelled is None or not unlabelled.bodies or cfg.self_train_per_label <= 0:
        return lin, probs, chosen, scores, 0
    pseudo = _pseudo_labels(lin, unlabelled, n_classes, chosen)
    lin, probs, _, _ = _fit_pipeline(prep, idx, y, n_classes, extra + pseudo, replace(chosen, svc_c_grid=()))
    return lin, probs, chosen, scores, pseudo.size


def check_labels(labels: Sequence[str], min_per_label: int) -> None:
    counts = Counter(labels)
    if len(counts) < 2:
        raise DataError(f"the data has {len(counts)} label(s) ({', '.join(counts) or 'none'}); at least 2 are needed")
    few = sorted(((n, label) for label, n in counts.items() if n < min_per_label))
    if few:
        listed = "; ".join(f"label {label!r} has {n} example{'s' if n != 1 else ''}" for n, label in few)
        raise DataError(f"{listed}; every label needs at least {min_per_label} "
                        "(add examples, merge the label into another, or drop its rows)")


@dataclass
class Corpus:
    """Labelled training texts plus short label descriptions (normalised), in one label space."""

    texts: list[str]
    labels: list[str]
    desc_texts: list[str]
    desc_labels: list[str]
    unlabelled: list[str] = field(default_factory=list)  # tickets without a label, for self-training


@dataclass
class Fitted:
    state: dict[str, Any]  # what model.joblib holds
    labels: list[str]
    threshold: float
    threshold_source: str
    coverage: float | None
    cv: dict[str, Any] | None
    selection: dict[str, Any]


def fit(corpus: Corpus, cfg: TrainConfig, say: Callable[[str], None] = lambda _m: None) -> Fitted:
    """The whole training procedure on an in-memory corpus: nested CV figures, selection, final model."""
    check_labels(corpus.labels, cfg.min_per_label)
    labels = sorted(set(corpus.labels))
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[label] for label in corpus.labels], dtype=np.int64)
    n_classes = len(labels)
    desc_texts = [t for t, o in zip(corpus.desc_texts, corpus.desc_labels, strict=True) if o in index]
    desc_y = np.array([index[o] for o in corpus.desc_labels if o in index], dtype=np.int64)
    extra = _Extra(desc_texts, desc_texts, desc_y, np.full(len(desc_texts), cfg.description_weight))
    prep = _Prepared(corpus.texts)
    unlabelled = _unlabelled(corpus, cfg, say)
    cv: dict[str, Any] | None = None
    if cfg.cv_folds >= 2:
        probs = np.zeros((y.size, n_classes))
        fold_acc, fold_f1, fold_choice = [], [], []
        folds = _folds(y, cfg.cv_folds, cfg.seed)

        def run_fold(fold: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
            tr, te = fold
            lin, _, chosen, _, _ = _fit_procedure(prep, tr, y, n_classes, extra, unlabelled, cfg)
            b, t = prep.take(te)
            return _softmax(_scores(lin, b, t, cfg.title_weight)), chosen.svc_c

        # folds in threads: liblinear and most numpy work release the GIL
        with ThreadPoolExecutor(max_workers=max(1, min(cfg.n_jobs, len(folds)))) as pool:
            for k, ((_, te), (fold_probs, c)) in enumerate(zip(folds, pool.map(run_fold, folds), strict=True), 1):
                probs[te] = fold_probs
                truth = [labels[i] for i in y[te]]
                pred = [labels[i] for i in fold_probs.argmax(axis=1)]
                fold_acc.append(evaluation.accuracy(truth, pred))
                fold_f1.append(evaluation.macro_f1(truth, pred))
                fold_choice.append(c)
                say(f"nested cross-validation fold {k}/{cfg.cv_folds}: accuracy {fold_acc[-1]:.4f}, "
                    f"macro-F1 {fold_f1[-1]:.4f} (selected C={c:g})")
        summary = evaluation.summarize(corpus.labels, probs, labels, cfg.target_precision)
        threshold = summary["threshold_for_target"]
        cv = {"folds": cfg.cv_folds, "seed": cfg.seed, "nested": True, "accuracy": summary["accuracy"],
              "macro_f1": summary["macro_f1"], "accuracy_per_fold": fold_acc, "macro_f1_per_fold": fold_f1,
              "selected_per_fold": [{"svc_c": c} for c in fold_choice],
              "log_loss": summary["log_loss"], "ece": summary["ece"], "per_class": summary["per_class"],
              "coverage_table": summary["coverage_table"]}
        threshold_source = f"{cfg.cv_folds}-fold nested cross-validated probabilities"
    final, inner_probs, chosen, scores, n_pseudo = _fit_procedure(prep, np.arange(y.size), y, n_classes, extra,
                                                                  unlabelled, cfg)
    if cv is None:
        inner = evaluation.summarize(corpus.labels, inner_probs, labels, cfg.target_precision)
        threshold = inner["threshold_for_target"]
        threshold_source = "inner out-of-fold probabilities (no outer cross-validation)"
    coverage: float | None = None
    if cv is not None:
        coverage = next((float(r["coverage"]) for r in cv["coverage_table"]
                         if abs(r["threshold"] - round(threshold, 4)) < 1e-9), None)
    state = {"labels": labels, "body": final.body.state(), "title": final.title.state(),
             "title_weight": cfg.title_weight, "weights": final.weights.astype(np.float32),
             "bias": final.bias.astype(np.float32), "threshold": threshold}
    selection = {"by": "macro-F1 of the inner out-of-fold probabilities (ties: log-loss)",
                 "candidates": [{"svc_c": c.svc_c, "inner_macro_f1": round(f, 6)}
                                for c, f in zip(_candidates(cfg), scores, strict=True)],
                 "chosen": {"svc_c": chosen.svc_c},
                 "self_training": None if unlabelled is None else {
                     "unlabelled_tickets": len(unlabelled.bodies), "pseudo_labelled": n_pseudo,
                     "per_label": cfg.self_train_per_label, "min_confidence": cfg.self_train_min_confidence,
                     "weight": cfg.self_train_weight}}
    return Fitted(state, labels, threshold, threshold_source, coverage, cv, selection)


def _unlabelled(corpus: Corpus, cfg: TrainConfig, say: Callable[[str], None]) -> _Prepared | None:
    """The unlabelled tickets for self-training, without copies of any labelled ticket.

    A repost of a labelled ticket (same opening, ``split.duplicate_key``) is dropped, so an
    outer fold's or the hold-out's test ticket cannot come back as a pseudo-labelled twin.
    """
    from services.routing.classifier.split import duplicate_key

    if not corpus.unlabelled or cfg.self_train_per_label <= 0:
        return None
    seen = {duplicate_key(t) for t in corpus.texts}
    kept = []
    for t in corpus.unlabelled:
        key = duplicate_key(t)
        if key not in seen:
            seen.add(key)
            kept.append(t)
    say(f"self-training pool: {len(kept)} unlabelled tickets ({len(corpus.unlabelled) - len(kept)} copies dropped)")
    return _Prepared(kept)


def find_descriptions(data_path: Path, descriptions: str | Path | None, auto: bool) -> Path | None:
    """The label-description file to use: the one given, else taxonomy.csv beside the data."""
    if descriptions:
        return Path(descriptions)
    if not auto:
        return None
    beside = data_path.parent / DESCRIPTIONS_FILE
    return beside if beside.is_file() and beside.resolve() != data_path.resolve() else None


def train(data: str | Path, text_columns: list[str], label_column: str, out_dir: str | Path,
          descriptions: str | Path | None = None, auto_descriptions: bool = True,
          config: TrainConfig | None = None, log: Callable[[str], None] | None = None,
          hold_out: HoldOut | None = None, unlabelled: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Train from a labelled CSV/XLSX and write a model folder. Returns its metadata.

    With ``hold_out`` a deterministic part of the rows (``split.holdout_split``) is set aside
    before anything else, the model is trained on the rest, scored once on the held-back
    rows (``metadata["holdout"]``), and the folder holds that model.
    ``unlabelled``: files of tickets without labels (same text columns) for self-training;
    copies of any labelled row, held back or not, are dropped first.
    """
    cfg = config or TrainConfig()
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    ex: Examples = load_examples(data, text_columns, label_column)
    texts, labels = ex.texts, ex.labels
    held: list[int] = []
    if hold_out is not None:
        kept, held = hold_out.split(ex)
        texts, labels = [ex.texts[i] for i in kept], [ex.labels[i] for i in kept]
        say(f"held back {len(held)} of {len(ex.texts)} rows ({hold_out.describe()}); training on {len(kept)}")
    check_labels(labels, cfg.min_per_label)
    corpus = Corpus(texts, labels, [], [])
    unlabelled_meta = []
    if unlabelled and cfg.self_train_per_label > 0:
        from services.routing.classifier.split import duplicate_key

        labelled = {duplicate_key(t) for t in ex.texts}  # held-back rows included
        for u_path in unlabelled:
            u = load_examples(u_path, text_columns, None)
            fresh = [t for t in u.texts if duplicate_key(t) not in labelled]
            corpus.unlabelled += fresh
            unlabelled_meta.append({"path": str(u_path), "sha256": u.table.sha256, "rows": len(u.texts),
                                    "copies_of_labelled_rows_dropped": len(u.texts) - len(fresh)})
    desc_meta: dict[str, Any] | None = None
    desc_path = find_descriptions(ex.table.path, descriptions, auto_descriptions)
    if desc_path is not None:
        d_texts, owners, table = load_label_descriptions(desc_path, set(labels))
        corpus.desc_texts, corpus.desc_labels = [normalize(t) for t in d_texts], owners
        desc_meta = {"path": str(desc_path), "sha256": table.sha256, "rows_used": len(d_texts),
                     "labels_described": sorted(set(owners))}
        say(f"label descriptions: {len(d_texts)} rows from {desc_path}")
    fitted = fit(corpus, cfg, say)
    metadata = describe_fit(fitted, corpus, cfg, started)
    metadata["data"] = {"path": str(ex.table.path), "sha256": ex.table.sha256, "rows": len(ex.table.rows),
                        "rows_used": len(texts), "rows_skipped": ex.skipped, "text_columns": text_columns,
                        "label_column": label_column}
    metadata["label_descriptions"] = desc_meta
    metadata["unlabelled"] = unlabelled_meta or None
    if hold_out is not None:
        from services.routing.classifier.model import TicketClassifier

        model = TicketClassifier(fitted.state)
        truth = [ex.labels[i] for i in held]
        probs = model.predict_proba([ex.texts[i] for i in held])
        summary = evaluation.summarize(truth, probs, fitted.labels, cfg.target_precision, fitted.threshold)
        metadata["holdout"] = {**hold_out.describe_dict(), "rows": len(held),
                               "labels": dict(sorted(Counter(truth).items())),
                               **{k: summary[k] for k in ("accuracy", "macro_f1", "log_loss", "ece", "coverage",
                                                          "precision_at_threshold", "per_class")}}
        say(f"held-back rows: accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    metadata["training_seconds"] = round(time.perf_counter() - started, 2)
    return save_model(fitted.state, metadata, Path(out_dir))


def describe_fit(fitted: Fitted, corpus: Corpus, cfg: TrainConfig, started: float) -> dict[str, Any]:
    """The metadata every model folder carries about its fit (``train`` and ``retrain`` add their parts)."""
    y = Counter(corpus.labels)
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": {label: y[label] for label in fitted.labels},
        "sizes": {"train_rows": len(corpus.texts), "description_rows": len(corpus.desc_texts),
                  "vocabulary_body": int(fitted.state["body"]["vocabulary"].size),
                  "vocabulary_title": int(fitted.state["title"]["vocabulary"].size)},
        "threshold": {"value": fitted.threshold, "target_precision": cfg.target_precision,
                      "source": fitted.threshold_source, "coverage": fitted.coverage},
        "cv": fitted.cv,
        "selection": fitted.selection,
        "config": {**asdict(cfg), "members": ["LinearSVC", "ComplementNB"], "stacker": "LogisticRegression",
                   "calibration": "temperature"},
        "libraries": _library_versions(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }


@dataclass(frozen=True)
class HoldOut:
    """Which rows ``train`` holds back: see ``split.holdout_split``."""

    fraction: float = 0.25
    salt: str = "holdout-v1"
    id_column: str | None = None  # names a row (hash input); default: the row's text
    group_column: str | None = None  # rows sharing it stay on one side (e.g. the author)

    def split(self, ex: Examples) -> tuple[list[int], list[int]]:
        from services.routing.classifier.split import duplicate_key, groups_of, holdout_split

        rows = ex.rows
        ids = [(r.get(self.id_column) or "") if self.id_column else t for r, t in zip(rows, ex.texts, strict=True)]
        keys = [[f"d:{duplicate_key(t)}"] + ([f"g:{r.get(self.group_column) or ''}"]
                                            if self.group_column and r.get(self.group_column) else [])
                for r, t in zip(rows, ex.texts, strict=True)]
        return holdout_split(ids, ex.labels, groups_of(keys), self.fraction, self.salt)

    def describe_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "salt": self.salt, "id_column": self.id_column,
                "group_column": self.group_column, "method": "split.holdout_split: sha256(salt:id) order, "
                "stratified by label, grouped by duplicate text and group column"}

    def describe(self) -> str:
        group = f", grouped by {self.group_column} and duplicate text" if self.group_column else \
            ", grouped by duplicate text"
        return f"{self.fraction:.0%} stratified, salt {self.salt!r}{group}"


def _library_versions() -> dict[str, str]:
    import joblib
    import scipy  # type: ignore[import-untyped, unused-ignore]
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__, "platform": sys.platform,
            "format_version": str(FORMAT_VERSION)}
