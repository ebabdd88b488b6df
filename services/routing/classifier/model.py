"""The trained classifier as the routing service uses it: load once, predict per batch.

A model folder holds ``model.joblib`` (plain numpy arrays: the two featurisers and one
folded linear layer) and ``metadata.json`` (how it was trained and how well it did).
Everything learned at training time (two linear members, the stacker that combines them
and the calibration temperature) is linear in the features, so prediction is featurise,
one sparse-times-dense product, softmax.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from services.routing.classifier.errors import ModelFormatError
from services.routing.classifier.text import CharNgramVectorizer, normalize, title_of

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
BATCH = 256  # texts featurised together (larger batches fall out of the CPU caches)
RUNNER_UPS = 2


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float  # calibrated probability of ``label``
    runner_up: list[tuple[str, float]] = field(default_factory=list)  # next labels, most likely first
    abstained: bool = False  # confidence below the threshold: manual dispatch (人工派单)
    model_version: str = ""


class TicketClassifier:
    """Chinese ticket text -> label with a calibrated confidence and an abstain threshold."""

    def __init__(self, state: dict[str, Any], metadata: dict[str, Any] | None = None,
                 model_version: str = "", threshold: float | None = None) -> None:
        self.labels: list[str] = list(state["labels"])
        self.body = CharNgramVectorizer.from_state(state["body"])
        self.title = CharNgramVectorizer.from_state(state["title"])
        self.title_weight = float(state["title_weight"])
        w = np.asarray(state["weights"], dtype=np.float32)  # (body+title vocabulary, labels)
        self._w_body = np.ascontiguousarray(w[: self.body.size])
        self._w_title = np.ascontiguousarray(w[self.body.size:] * self.title_weight)
        self._bias = np.asarray(state["bias"], dtype=np.float32)
        self.metadata: dict[str, Any] = metadata or {}
        self.model_version = model_version
        self.threshold = float(state["threshold"] if threshold is None else threshold)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            chunk = texts[start:start + BATCH]
            bodies = [normalize(t) for t in chunk]
            titles = [normalize(title_of(t)) for t in chunk]
            z = self.body.transform(bodies) @ self._w_body
            z += self.title.transform(titles) @ self._w_title
            z += self._bias
            out[start:start + len(chunk)] = z
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, one row per text, columns in ``self.labels`` order."""
        z = self.logits(texts)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict_batch(self, texts: list[str]) -> list[Prediction]:
        """One prediction per text. A text is ``title + "\\n" + body`` (see ``text.compose``)."""
        if not texts:
            return []
        probs = self.predict_proba(texts)
        order = np.argsort(-probs, axis=1)[:, : RUNNER_UPS + 1]
        out = []
        labels, version, threshold = self.labels, self.model_version, self.threshold
        for row, idx in zip(probs.tolist(), order.tolist(), strict=True):
            best = idx[0]
            confidence = row[best]
            out.append(Prediction(labels[best], confidence, [(labels[j], row[j]) for j in idx[1:]],
                                  confidence < threshold, version))
        return out

    def predict(self, text: str) -> Prediction:
        return self.predict_batch([text])[0]


def save_model(state: dict[str, Any], metadata: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write a model folder; returns the metadata as written (with model_version and size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {**state, "format_version": FORMAT_VERSION}
    model_path = out_dir / MODEL_FILE
    joblib.dump(state, model_path, compress=3)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    metadata = {**metadata, "format_version": FORMAT_VERSION, "model_version": _version(digest),
                "model_sha256": digest}
    metadata.setdefault("sizes", {})["model_bytes"] = model_path.stat().st_size
    text = json.dumps(metadata, ensure_ascii=False, indent=2)
    (out_dir / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _version(digest: str) -> str:
    return f"f{FORMAT_VERSION}-{digest[:10]}"


def load_model(path: str | Path, threshold: float | None = None) -> TicketClassifier:
    """Load a model folder written by ``hotline classify train``.

    Refuses (ModelFormatError) a folder that is incomplete or of another format version.
    ``threshold`` overrides the abstain threshold chosen at training time.
    """
    folder = Path(path)
    meta_path, model_path = folder / METADATA_FILE, folder / MODEL_FILE
    if not folder.is_dir():
        raise ModelFormatError(f"model folder {folder} does not exist")
    if not meta_path.is_file() or not model_path.is_file():
        raise ModelFormatError(f"{folder} is not a classifier model folder (needs {METADATA_FILE} and {MODEL_FILE})")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read {meta_path}: {exc}") from exc
    found = metadata.get("format_version") if isinstance(metadata, dict) else None
    if found != FORMAT_VERSION:
        raise ModelFormatError(
            f"model folder {folder} has format version {found!r}; this program reads version {FORMAT_VERSION}: "
            "retrain it with `hotline classify train`")
    raw = model_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if metadata.get("model_sha256") not in (None, digest):
        raise ModelFormatError(f"{model_path} does not match its metadata (sha256 differs): the folder is damaged")
    try:
        state = joblib.load(model_path)
    except Exception as exc:  # a truncated or foreign pickle
        raise ModelFormatError(f"cannot load {model_path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{model_path} is not a format-{FORMAT_VERSION} classifier model")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must lie in [0, 1]")
    return TicketClassifier(state, metadata, _version(digest), threshold)
