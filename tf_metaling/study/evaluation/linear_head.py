"""The zero-shot task head: class-balanced logistic regression on pooled features, L2 strength by cross-validation.

The same learner is the frozen-encoder probe (features of the pretrained
encoder alone) and the stage-2 head of the transfer protocol (features of the
encoder with the English LS layers): scikit-learn's `LogisticRegressionCV`
after standardisation, ``class_weight="balanced"`` (each class carries the
same total weight, so a 74% majority class does not win by default), the
inverse L2 strength chosen among `cs` by stratified k-fold cross-validation
on the training examples (balanced accuracy), then refit on all of them.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class LinearHead:
    """``LinearHead(cs, folds, seed).fit(features, targets).predict(features)``; ``chosen_c`` after fitting."""

    def __init__(self, cs=(0.01, 0.1, 1.0, 10.0), folds: int = 5, seed: int = 0, max_iter: int = 5000):
        self.cs = [float(c) for c in cs]
        self.folds = int(folds)
        self.seed = int(seed)
        self.max_iter = int(max_iter)
        self.pipeline = None

    def estimator(self):
        """The unfitted scikit-learn pipeline (scaler + cross-validated logistic regression)."""
        return make_pipeline(StandardScaler(), LogisticRegressionCV(
            Cs=self.cs, cv=StratifiedKFold(self.folds, shuffle=True, random_state=self.seed),
            class_weight="balanced", scoring="balanced_accuracy", max_iter=self.max_iter))

    def fit(self, features, targets) -> "LinearHead":
        targets = np.asarray(targets)
        counts = np.bincount(targets)
        if (counts[counts > 0] < self.folds).any() or (counts > 0).sum() < 2:
            raise ValueError(f"LinearHead: {self.folds}-fold cross-validation needs at least {self.folds} examples "
                             f"of each of two or more classes; the class counts are {counts.tolist()}.")
        self.pipeline = self.estimator().fit(np.asarray(features, np.float64), targets)
        return self

    @property
    def chosen_c(self) -> float:
        return float(self.pipeline[-1].C_[0])

    def predict(self, features) -> np.ndarray:
        if self.pipeline is None:
            raise ValueError("LinearHead: fit it before predicting.")
        return self.pipeline.predict(np.asarray(features, np.float64))


def predictions_summary(predicted, examples, label_names, **extra) -> dict:
    """Accuracy, each class's share of the predictions, and the predictions themselves, of one test set."""
    predicted = np.asarray(predicted, np.int64)
    expected = np.array([list(label_names).index(e.label) for e in examples])
    shares = np.bincount(predicted, minlength=len(label_names)) / max(len(predicted), 1)
    return {"accuracy": float(np.mean(predicted == expected)) if len(expected) else None,
            "shares": [float(s) for s in shares], "n": int(len(expected)), "predictions": predicted.tolist(), **extra}
