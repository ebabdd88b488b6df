"""Scores of a classifier: accuracy, macro-F1, per-class figures, calibration, coverage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def per_class(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> list[dict[str, Any]]:
    t, p = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    out = []
    for label in labels:
        tp = int(np.sum((t == label) & (p == label)))
        support = int(np.sum(t == label))
        predicted = int(np.sum(p == label))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return out


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    return float(np.mean(np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object))) if len(y_true) else 0.0


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Mean F1 over the labels present in the truth or the predictions (scikit-learn's definition)."""
    labels = sorted(set(y_true) | set(y_pred))
    rows = per_class(y_true, y_pred, labels)
    return float(np.mean([r["f1"] for r in rows])) if rows else 0.0


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Lowest confidence threshold whose automatically decided tickets reach ``target`` precision.

    Tickets are taken most confident first; the threshold is the confidence of the last
    ticket of the largest such set whose precision is still at least ``target``. Returns
    1.0 (abstain on everything) when not even the most confident ticket alone reaches it.
    """
    if confidence.size == 0:
        return 1.0
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    # a threshold can only cut between distinct confidences: keep the last index of each run
    last_of_run = np.r_[conf[1:] != conf[:-1], True]
    ok = np.flatnonzero((precision >= target) & last_of_run)
    if not ok.size:
        return 1.0
    return float(conf[ok[-1]])


def coverage_table(confidence: np.ndarray, correct: np.ndarray,
                   thresholds: Sequence[float]) -> list[dict[str, float]]:
    rows = []
    n = max(confidence.size, 1)
    for t in sorted(set(float(x) for x in thresholds)):
        decided = confidence >= t
        k = int(decided.sum())
        rows.append({"threshold": round(t, 4), "coverage": k / n,
                     "precision": float(correct[decided].mean()) if k else float("nan"),
                     "decided": k, "to_manual": int(confidence.size - k)})
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(total)


def log_loss(probs: np.ndarray, y_idx: np.ndarray) -> float:
    p = np.clip(probs[np.arange(y_idx.size), y_idx], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def summarize(y_true: Sequence[str], probs: np.ndarray, labels: Sequence[str], target_precision: float,
              model_threshold: float | None = None) -> dict[str, Any]:
    """All figures for probabilities ``probs`` (columns in ``labels`` order) against the truth."""
    labels = list(labels)
    pred_idx = probs.argmax(axis=1)
    y_pred = [labels[i] for i in pred_idx]
    confidence = probs[np.arange(len(pred_idx)), pred_idx]
    correct = np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)
    t95 = threshold_for_precision(confidence, correct, target_precision)
    thresholds = list(DEFAULT_THRESHOLDS) + [t95] + ([model_threshold] if model_threshold is not None else [])
    known = [i for i, y in enumerate(y_true) if y in labels]
    y_idx = np.array([labels.index(y_true[i]) for i in known], dtype=np.int64)
    out: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "per_class": per_class(y_true, y_pred, sorted(set(labels) | set(y_true))),
        "log_loss": log_loss(probs[known], y_idx) if known else float("nan"),
        "ece": expected_calibration_error(confidence, correct),
        "target_precision": target_precision,
        "threshold_for_target": t95,
        "coverage_at_target": float((confidence >= t95).mean()) if confidence.size else 0.0,
        "coverage_table": coverage_table(confidence, correct, thresholds),
    }
    if model_threshold is not None:
        decided = confidence >= model_threshold
        out["model_threshold"] = model_threshold
        out["coverage"] = float(decided.mean()) if confidence.size else 0.0
        out["precision_at_threshold"] = float(correct[decided].mean()) if decided.any() else float("nan")
    return out


def format_report(summary: dict[str, Any]) -> str:
    lines = [f"tickets           {summary['n']}",
             f"accuracy          {summary['accuracy']:.4f}",
             f"macro-F1          {summary['macro_f1']:.4f}",
             f"log-loss          {summary['log_loss']:.4f}",
             f"calibration (ECE) {summary['ece']:.4f}"]
    if "model_threshold" in summary:
        lines.append(f"model threshold   {summary['model_threshold']:.4f}: automatic {summary['coverage']:.1%}, "
                     f"precision {summary['precision_at_threshold']:.4f}, the rest to manual dispatch (人工派单)")
    lines += ["", f"{'label':<16}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}"]
    for r in summary["per_class"]:
        lines.append(f"{_pad(r['label'], 16)}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}"
                     f"{r['support']:>9d}")
    lines += ["", f"{'threshold':>10}{'coverage':>10}{'precision':>11}{'automatic':>11}{'manual':>8}"]
    for r in summary["coverage_table"]:
        marks = []
        if abs(r["threshold"] - round(summary["threshold_for_target"], 4)) < 1e-9:
            marks.append(f"lowest with precision >= {summary['target_precision']:.0%}")
        if "model_threshold" in summary and abs(r["threshold"] - round(summary["model_threshold"], 4)) < 1e-9:
            marks.append("model's threshold")
        precision = "-" if np.isnan(r["precision"]) else f"{r['precision']:.4f}"
        lines.append(f"{r['threshold']:>10.4f}{r['coverage']:>10.1%}{precision:>11}{r['decided']:>11d}"
                     f"{r['to_manual']:>8d}" + (f"  <- {'; '.join(marks)}" if marks else ""))
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    """Left-justify counting CJK characters as two columns."""
    cols = sum(2 if ord(c) > 0x2E7F else 1 for c in text)
    return text + " " * max(1, width - cols)
