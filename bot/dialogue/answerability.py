"""Whether the best entry really answers a question: a small learned judgement.

A fused score says how alike a question and an entry are; it cannot tell "卖酒水的店铺保证金是多少"
(the entry on deposits names no category) from "开店保证金多少" (it answers). The features below
describe what a reader would check: how alike the two are, how far ahead of the next entry the
best one is, how much of what is informative in the question the entry never mentions, and
whether the question asks for something (a duration, a fee, a rate, where to apply …) that the
entry neither is asked for nor holds ("灵犀要收费吗" against the entry on what 灵犀 is and who
may use it, which names no fee). A logistic regression over them is trained on the development
set's calibration half and the training batches (`python -m bot eval --train`), its threshold
chosen on the calibration half, and its weights kept in `answerability.json` beside this
module. Pure functions over arrays; no I/O but loading weights.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("answerability.json")
FEATURES = ("score", "dense", "lexical", "gap", "uncovered", "uncovered_by_questions",
            "unknown", "aspect_missing", "asks_aspect", "length")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z][a-z0-9']+|\d+(?:\.\d+)?")
# What a question may ask for, by the words that ask it (on normalised text), and the signs in
# an entry's text that it holds such a thing. An entry "has" an aspect when one of its own
# questions asks for it or its text shows the sign ("1–3 个工作日" is a duration).
_AMOUNT = r"\d(?:\.\d+)?\s*(?:多|余|几)?\s*(?:万|千|百)?\s*"  # "7600 多篇", "1.2 万元"
_ASPECTS: dict[str, tuple[str, str | None]] = {
    "duration": (r"几天|多久|多长时间|几个工作日|多少天|几个月|how long|how many days|when will",
                 _AMOUNT + r"(?:天|个?工作日|小时|个多?月|周)|"
                 r"\d\s*(?:days?|hours?|months?|weeks?)\b"),
    "fee": (r"多少钱|收费|费用|要钱|免费|交钱|几块钱|价格|年费|\bcost|\bfees?\b|\bfree\b|\bprice|"
            r"how much|\bcharge", _AMOUNT + r"(?:元|块)|\d\s*万|免费|不收费|yuan|free of charge"),
    "rate": (r"几个点|费率|比例|抽成|抽佣|扣点|佣金|分成(?:比例|多少)|分几成|能分多少|percent|%|"
             r"commission|\brate\b",
             r"\d\s*%|百分之"),
    # "多少条" and "几块" (parts) count; "哪几种" asks which ones, "几块钱" a fee.
    "count": (r"(?:多少|(?<!哪)几)(?:个|篇|次|粉|人|条|家|位|款|种|块(?!钱))|how many",
              _AMOUNT + r"(?:个|篇|次|粉|人|条|家|位|款)"),
    # "在哪申请" asks where to apply; "差在哪" asks what the difference is.
    "procedure": (r"怎么开通|怎么申请|(?:在哪|哪里)(?:里|儿)?(?:申请|开通|设置|找|看|查|弄|"
                  r"操作|提交|投诉|举报|报名|下载|导出)|入口|怎么弄|怎么操作|怎么设置|怎么用|流程|步骤|"
                  r"how do i|how to|\bwhere (?:do|can|is|are)\b", None),
    "penalty": (r"处罚|罚|扣分|扣几分|封号|封禁|限流|违规吗|会被|penal|\bban|punish|throttl", None),
    "refund": (r"退吗|退款|退回|退不退|能退|refund", None),
    "eligibility": (r"能不能|可以吗|能吗|条件|门槛|资格|要求|需要.*吗|can i|eligib|require|qualif",
                    None),
    "definition": (r"是什么|是啥|指啥|什么意思|啥意思|what is|what's|\bmean", None),
    "history": (r"哪年|什么时候|最早|以前|之前|历史|当年|when did|history|used to", r"20\d\d"),
    "expiry": (r"有效期|过期|失效|清零|恢复|\bexpire|\breset\b|recover",
               r"有效期|过期|清零|恢复|valid for|expire"),
}
_ASKS = {k: re.compile(asked) for k, (asked, _) in _ASPECTS.items()}
_HOLDS = {k: re.compile(held) for k, (_, held) in _ASPECTS.items() if held}


def aspects_asked(text: str) -> frozenset[str]:
    """Return what a normalised question asks for: a duration, a fee, where to apply …"""
    return frozenset(k for k, pattern in _ASKS.items() if pattern.search(text))


def aspects_held(text: str) -> frozenset[str]:
    """Return the aspects whose sign a normalised entry text shows (a figure in days …)."""
    return frozenset(k for k, pattern in _HOLDS.items() if pattern.search(text))


def terms(text: str) -> set[str]:
    """Return the terms of normalised text: Chinese character bigrams and Latin words."""
    out: set[str] = set()
    for run in _HAN_RUN.findall(text):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
        if len(run) == 1:
            out.add(run)
    out.update(w for w in _WORD.findall(text) if len(w) > 1)
    return out


@dataclass(frozen=True)
class Vocabulary:
    """Which terms each entry uses, and how informative each term is across the entries."""

    entry_terms: dict[str, frozenset[str]]
    question_terms: dict[str, frozenset[str]]
    entry_aspects: dict[str, frozenset[str]]
    idf: dict[str, float]
    unknown_idf: float

    @classmethod
    def of(cls, texts: dict[str, str], questions: dict[str, str]) -> Vocabulary:
        """Build from each entry's normalised whole text, and its title and questions alone."""
        entry_terms = {key: frozenset(terms(text)) for key, text in texts.items()}
        question_terms = {key: frozenset(terms(text)) for key, text in questions.items()}
        df = Counter(t for ts in entry_terms.values() for t in ts)
        n = len(texts)
        idf = {t: math.log((n + 1) / (f + 1)) + 1.0 for t, f in df.items()}
        held = {k: aspects_asked(questions.get(k, "")) | aspects_held(t) for k, t in texts.items()}
        return cls(entry_terms, question_terms, held, idf, math.log(n + 1) + 1.0)

    def weight(self, term: str) -> float:
        return self.idf.get(term, self.unknown_idf)


def features(query: str, key: str, score: float, dense: float, lexical: float, gap: float,
             vocabulary: Vocabulary) -> np.ndarray:
    """Describe one (question, best entry) pair; query is the normalised question."""
    asked = terms(query)
    mine = vocabulary.entry_terms.get(key, frozenset())
    total = sum(vocabulary.weight(t) for t in asked) or 1.0
    missing = [t for t in asked if t not in mine]
    uncovered = sum(vocabulary.weight(t) for t in missing) / total
    about = vocabulary.question_terms.get(key, frozenset())
    by_questions = sum(vocabulary.weight(t) for t in asked if t not in about) / total
    # A term no entry uses at all is the strongest sign of a question the knowledge lacks.
    unknown = [t for t in missing if t not in vocabulary.idf]
    max_unknown = len(unknown) / (len(asked) or 1)
    wanted = aspects_asked(query)
    held = vocabulary.entry_aspects.get(key, frozenset())
    aspect_missing = float(bool(wanted) and not wanted & held)
    return np.array([score, dense, lexical, gap, uncovered, by_questions, max_unknown,
                     aspect_missing, float(bool(wanted)), min(len(query), 120) / 120.0])


@dataclass(frozen=True)
class Model:
    """Standardised logistic regression with a decision threshold."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, x: np.ndarray) -> float:
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return float(1.0 / (1.0 + math.exp(-(float(z @ np.array(self.weights)) + self.bias))))

    def answers(self, x: np.ndarray) -> bool:
        return self.probability(x) >= self.threshold

    def save(self, path: Path = WEIGHTS) -> None:
        data = {"features": list(FEATURES), **asdict(self)}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> Model | None:
        """Read the trained weights; None when there are none (the hand threshold then rules)."""
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data.get("features", ())) != FEATURES:
            return None  # trained on other features: retrain
        return cls(tuple(data["mean"]), tuple(data["scale"]), tuple(data["weights"]),
                   float(data["bias"]), float(data["threshold"]))


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.1, steps: int = 3000,
        rate: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit a logistic regression by gradient descent; return mean, scale, weights, bias."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    w = np.zeros(z.shape[1])
    b = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= rate * (z.T @ (p - y) / len(y) + l2 * w)
        b -= rate * float(np.mean(p - y))
    return mean, scale, w, b


def train(x: np.ndarray, y: np.ndarray, thresholds: Iterable[float]) -> Model:
    """Fit on all rows and pick the threshold with the most right decisions."""
    mean, scale, w, b = fit(x, y)
    model = Model(tuple(mean), tuple(scale), tuple(w), b, 0.5)
    probabilities = np.array([model.probability(row) for row in x])
    best = max(thresholds, key=lambda t: (int(np.sum((probabilities >= t) == (y == 1))), -t))
    return Model(tuple(mean), tuple(scale), tuple(w), b, float(best))


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int = 5,
                   thresholds: Sequence[float] = ()) -> dict[str, int]:
    """Return the confusion counts of k-fold predictions (each row judged by a model that never
    saw it): tp (answered rightly), fp (answered what it should not), tn, fn."""
    order = np.arange(len(y))
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for k in range(folds):
        test = order % folds == k
        model = train(x[~test], y[~test], thresholds)
        for row, label in zip(x[test], y[test], strict=True):
            said = model.answers(row)
            counts[("t" if said == bool(label) else "f") + ("p" if said else "n")] += 1
    return counts
