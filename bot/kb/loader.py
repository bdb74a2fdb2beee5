"""Load and validate the knowledge base: entries, ambiguous concepts and aliases.

Every problem is reported as ``file:line: message`` so a non-programmer can find and fix it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.copy import known, say
from index.normalize import Normalizer, has_han

BASIS_LABELS = {
    "official": "官方规则",
    "staff": "平台人员说法",
    "media": "媒体报道",
    "practitioner": "服务商或从业者经验",
    "unverified": "第三方网页（未核实）",
}
BASIS_LABELS_EN = {
    "official": "official rule",
    "staff": "platform staff's statement",
    "media": "media report",
    "practitioner": "service provider's or practitioner's experience",
    "unverified": "third-party web page (unverified)",
}
# Authors may write the basis in Chinese or in English; both fold to the key above.
_BASIS_WORDS = {
    **{label: key for key, label in BASIS_LABELS.items()},
    **{label: key for key, label in BASIS_LABELS_EN.items()},
    "从业者经验": "practitioner",
    "服务商经验": "practitioner",
    "第三方网页": "unverified",
    "official rule": "official",
    "staff statement": "staff",
    "practitioner opinion": "practitioner",
    **{key: key for key in BASIS_LABELS},
}
# 官方规则 needs the platform's own document among the sources: a page on one of these hosts.
OFFICIAL_HOSTS = ("xiaohongshu.com", "xhscdn.com", "xhslink.com", "xiaohongshu.net")
ENTRY_FIELDS = {
    "id", "title", "questions", "topic", "concepts", "basis", "sources", "as_of", "related",
    "title_en", "questions_en", "valid_from", "valid_until",
}
SCOPE_LISTS = ("this_platform", "other_platforms", "other_platforms_in_general",
               "declined_requests", "greetings", "thanks", "chitchat")
# The English answer follows the Chinese one in the body, after a line of its own:
ENGLISH_MARKER = "## English"
MIN_QUESTIONS_EN = 2
REQUIRED_FIELDS = ("id", "title", "questions", "topic", "basis", "sources", "as_of")
MIN_QUESTIONS = 4
# gaps.yaml: questions sellers ask that the knowledge knows it cannot answer yet.
GAP_FIELDS = ("id", "topic", "topic_en", "questions", "questions_en", "note", "note_en",
              "checked", "see")
GAP_REQUIRED = ("id", "topic", "topic_en", "questions", "questions_en", "note", "note_en",
                "checked")
MIN_GAP_QUESTIONS = 3
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_date(value: str, full: bool = False) -> bool:
    """Tell whether value is a calendar date written 2025, 2025-08 or 2025-08-25 (only the
    last when full): 2025-02-30 has the shape but would break freshness judgements later."""
    if not (_FULL_DATE if full else _DATE).match(value):
        return False
    year, month, day = ([int(p) for p in value.split("-")] + [1, 1])[:3]
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True
UNDATED = frozenset({"undated", "未注明", "不详"})  # ways a source may say it has no date
# Words that show a question is about a term itself ("个体店是什么意思"), not a how-to.
DEFAULT_GENERAL_CUES = ("什么意思", "是什么", "指什么", "指啥", "是啥", "啥意思", "区别",
                        "哪几种", "有几种", "有哪些", "哪些", "定义", "一回事", "一样吗", "承认",
                        "分别", "两种", "解释", "说法", "mean", "what is", "what is a", "what's",
                        "what are", "difference", "definition")


@dataclass(frozen=True)
class Problem:
    """One finding about the knowledge files.

    message is a bot/copy.py key (kb_...) filled in with values, so the text is chosen in the
    reader's language when printed; any other message is shown as written.
    """

    path: str
    line: int
    message: str
    severity: str = "error"
    values: tuple[tuple[str, object], ...] = ()

    def text(self, lang: str = "zh") -> str:
        """Return `file:line: message` in lang (Chinese, the maintainers' language, or "en")."""
        body = (say(lang, self.message, **dict(self.values)) if known(self.message)
                else self.message)
        tag = "" if self.severity == "error" else say(lang, "kb_warning")
        return f"{self.path}:{self.line}: {tag}{body}"

    def __str__(self) -> str:
        return self.text()


def _problem(path: str, line: int, key: str, severity: str = "error",
             **values: object) -> Problem:
    return Problem(path, line, key, severity, tuple(values.items()))


class KnowledgeError(Exception):
    """The knowledge files have errors; `problems` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Source:
    """Where a fact comes from: a seed file name or a page address, and its date."""

    ref: str
    date: str
    by: str = ""  # who published it: the outlet, agency or author, when the page names one

    @property
    def official(self) -> bool:
        """Tell whether this is the platform's own document."""
        host = re.sub(r"^[a-z]+://", "", self.ref.lower()).split("/", 1)[0]
        return any(host == h or host.endswith("." + h) for h in OFFICIAL_HOSTS)


@dataclass(frozen=True)
class Entry:
    """One answerable question with its answer and provenance."""

    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    topic: str
    concepts: tuple[str, ...]
    basis: str
    sources: tuple[Source, ...]
    as_of: str
    related: tuple[str, ...]
    path: str
    line: int
    title_en: str = ""
    questions_en: tuple[str, ...] = ()
    answer_en: str = ""
    valid_from: str = ""
    valid_until: str = ""

    @property
    def basis_label(self) -> str:
        """Return the basis in the words users read."""
        return BASIS_LABELS[self.basis]

    @property
    def has_english(self) -> bool:
        """Tell whether the entry can answer in English."""
        return bool(self.title_en and self.answer_en and self.questions_en)


@dataclass(frozen=True)
class KnownGap:
    """A question sellers ask that the knowledge has no reliable source for yet: the bot says
    so plainly instead of answering it from a neighbouring entry."""

    id: str
    topic: str
    questions: tuple[str, ...]
    note: str  # what was looked for and where to check meanwhile
    checked: str  # when the gap was last confirmed
    see: tuple[str, ...]  # entries on the nearby questions the knowledge does answer
    path: str
    line: int
    topic_en: str = ""
    questions_en: tuple[str, ...] = ()
    note_en: str = ""


@dataclass(frozen=True)
class Sense:
    """One meaning of an ambiguous term."""

    id: str
    label: str
    cues: tuple[str, ...]
    entries: tuple[str, ...]
    label_en: str = ""


@dataclass(frozen=True)
class Concept:
    """An ambiguous term, the question that settles it, and its senses."""

    id: str
    term: str
    terms: tuple[str, ...]
    question: str
    senses: tuple[Sense, ...]
    general: tuple[str, ...] = ()
    general_cues: tuple[str, ...] = ()
    question_en: str = ""

    @property
    def entries(self) -> tuple[str, ...]:
        """Every entry the concept names: its general ones, then each sense's."""
        return (*self.general, *(key for sense in self.senses for key in sense.entries))


@dataclass(frozen=True)
class KnowledgeBase:
    """The validated knowledge: entries in file order, concepts, aliases and terms."""

    entries: dict[str, Entry]
    concepts: tuple[Concept, ...]
    aliases: dict[str, str]
    terms: tuple[str, ...]
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    this_platform: tuple[str, ...] = ()
    other_platforms: tuple[str, ...] = ()
    other_platforms_in_general: tuple[str, ...] = ()
    declined_requests: tuple[str, ...] = ()
    greetings: tuple[str, ...] = ()
    thanks: tuple[str, ...] = ()
    chitchat: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    gaps: dict[str, KnownGap] = field(default_factory=dict)

    def known_terms(self) -> tuple[str, ...]:
        """The platform's own terms: the listed ones, what aliases stand for, concept terms."""
        concept_terms = [t for c in self.concepts for t in c.terms]
        return tuple(dict.fromkeys((*self.terms, *self.aliases.values(), *concept_terms)))

    def normalizer(self) -> Normalizer:
        """Build the normaliser that folds aliases and repairs homophones of known terms."""
        return Normalizer(self.aliases, self.known_terms(), self.ignore)

    def to_json(self) -> bytes:
        """Serialise for storage beside an index build."""
        data = {
            "entries": [asdict(e) for e in self.entries.values()],
            "concepts": [asdict(c) for c in self.concepts],
            "aliases": self.aliases,
            "terms": list(self.terms),
            "this_platform": list(self.this_platform),
            "other_platforms": list(self.other_platforms),
            "other_platforms_in_general": list(self.other_platforms_in_general),
            "declined_requests": list(self.declined_requests),
            "greetings": list(self.greetings),
            "thanks": list(self.thanks),
            "chitchat": list(self.chitchat),
            "ignore": list(self.ignore),
            "gaps": [asdict(g) for g in self.gaps.values()],
        }
        return json.dumps(data, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> KnowledgeBase:
        """Restore a knowledge base stored with to_json."""
        data = json.loads(raw)
        entries = {}
        for e in map(_lists_as_tuples, data["entries"]):
            e["sources"] = tuple(Source(**s) for s in e["sources"])
            entries[e["id"]] = Entry(**e)
        concepts = tuple(
            Concept(
                id=c["id"], term=c["term"], terms=tuple(c["terms"]), question=c["question"],
                senses=tuple(
                    Sense(s["id"], s["label"], tuple(s["cues"]), tuple(s["entries"]),
                          s.get("label_en", ""))
                    for s in c["senses"]
                ),
                general=tuple(c["general"]),
                general_cues=tuple(c.get("general_cues", ())),
                question_en=c.get("question_en", ""),
            )
            for c in data["concepts"]
        )
        gaps = {g["id"]: KnownGap(**g) for g in map(_lists_as_tuples, data.get("gaps", ()))}
        return cls(entries, concepts, dict(data["aliases"]), tuple(data["terms"]),
                   this_platform=tuple(data.get("this_platform", ())),
                   other_platforms=tuple(data.get("other_platforms", ())),
                   other_platforms_in_general=tuple(data.get("other_platforms_in_general", ())),
                   declined_requests=tuple(data.get("declined_requests", ())),
                   greetings=tuple(data.get("greetings", ())),
                   thanks=tuple(data.get("thanks", ())),
                   chitchat=tuple(data.get("chitchat", ())),
                   ignore=tuple(data.get("ignore", ())), gaps=gaps)


def _lists_as_tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """Return stored fields with JSON's lists back as the tuples the dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


# ---------------------------------------------------------------- YAML with line numbers


class _Text(str):
    """A YAML string that remembers its line (1-based, within the YAML document)."""

    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_text(loader: _LineLoader, node: yaml.ScalarNode) -> _Text:
    text = _Text(loader.construct_scalar(node))
    text.line = node.start_mark.line + 1
    return text


_LineLoader.add_constructor("tag:yaml.org,2002:str", _construct_text)
# Dates stay text: the loader checks them itself, so 2026-02-30 is a file:line problem, not
# PyYAML's ValueError.
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def _line_of(value: Any, default: int) -> int:
    return getattr(value, "line", 0) or default


def _parse_yaml(text: str, path: str, offset: int, problems: list[Problem]) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        # The context mark is where the broken construct starts (the unclosed '[', the key
        # missing its ':'); the problem mark is where the parser gave up, often a line later.
        mark = exc.context_mark or exc.problem_mark
        line = (mark.line + 1 if mark else 1) + offset
        problems.append(_problem(path, line, "kb_yaml_syntax", detail=exc.problem or str(exc)))
    except yaml.YAMLError as exc:
        problems.append(_problem(path, 1 + offset, "kb_yaml_error", detail=str(exc)))
    return None


# ---------------------------------------------------------------- entries


def _split_front_matter(text: str) -> tuple[str, str, int] | None:
    """Return (front matter, body, line where the body starts) or None if there is none."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value).strip()


def _parse_entry(path: Path, rel: str, problems: list[Problem]) -> Entry | None:
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is harmless
    except UnicodeDecodeError as exc:
        problems.append(_problem(rel, 1, "kb_not_utf8", reason=exc.reason))
        return None
    parts = _split_front_matter(text)
    if parts is None:
        problems.append(_problem(rel, 1, "kb_no_front_matter"))
        return None
    head, body, body_line = parts
    data = _parse_yaml(head, rel, 1, problems)
    if data is None:
        if not problems or problems[-1].path != rel:
            problems.append(_problem(rel, 2, "kb_front_matter_empty"))
        return None
    if not isinstance(data, dict):
        problems.append(_problem(rel, 2, "kb_front_matter_lines"))
        return None
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        problems.append(_problem(rel, 2, "kb_field_name", name=repr(odd[0])))
        return None
    at = {str(k): _line_of(k, 1) + 1 for k in data}  # +1: the opening '---' line
    count = len(problems)
    for key in data:
        if key not in ENTRY_FIELDS:
            problems.append(_problem(rel, at[key], "kb_unknown_field", field=key))
    for key in REQUIRED_FIELDS:
        if data.get(key) in (None, "", []):
            problems.append(_problem(rel, at.get(key, 2), "kb_missing_field", field=key))
    answer, _, answer_en = (part.strip() for part in split_english(body))
    if not answer:
        problems.append(_problem(rel, body_line, "kb_empty_answer"))
    entry_id = _as_text(data.get("id"))
    if entry_id and not _ID.match(entry_id):
        problems.append(_problem(rel, at["id"], "kb_bad_id", id=entry_id))
    questions = _string_list(data.get("questions"), rel, at.get("questions", 2), problems)
    if data.get("questions") and len(questions) < MIN_QUESTIONS:
        problems.append(_problem(rel, at["questions"], "kb_few_questions", least=MIN_QUESTIONS,
                                 count=len(questions)))
    basis = _BASIS_WORDS.get(_as_text(data.get("basis")).lower())
    if data.get("basis") and basis is None:
        problems.append(_problem(rel, at["basis"], "kb_bad_basis",
                                 basis=_as_text(data.get("basis")),
                                 choices="、".join(BASIS_LABELS.values()),
                                 keys=", ".join(BASIS_LABELS)))
    as_of = _as_text(data.get("as_of"))
    if as_of and not _is_date(as_of):
        problems.append(_problem(rel, at["as_of"], "kb_bad_as_of", value=as_of))
    sources = _sources(data.get("sources"), rel, at.get("sources", 2), problems)
    if basis == "official" and sources and not any(s.official for s in sources):
        problems.append(_problem(rel, at["basis"], "kb_official_source",
                                 host=OFFICIAL_HOSTS[0]))
    questions_en = _string_list(data.get("questions_en"), rel, at.get("questions_en", 2),
                                problems)
    validity = {}
    for key in ("valid_from", "valid_until"):
        validity[key] = _as_text(data.get(key))
        if validity[key] and not _is_date(validity[key], full=True):
            problems.append(_problem(rel, at[key], "kb_bad_full_date", field=key,
                                     value=validity[key]))
    if (validity["valid_from"] and validity["valid_until"]
            and validity["valid_until"] < validity["valid_from"]):
        problems.append(_problem(rel, at["valid_until"], "kb_until_before_from"))
    if len(problems) > count:
        return None
    return Entry(
        id=entry_id,
        title=_as_text(data["title"]),
        questions=tuple(questions),
        answer=answer,
        topic=_as_text(data["topic"]),
        concepts=tuple(_string_list(data.get("concepts"), rel, at.get("concepts", 2), problems)),
        basis=basis or "",
        sources=tuple(sources),
        as_of=as_of,
        related=tuple(_string_list(data.get("related"), rel, at.get("related", 2), problems)),
        path=rel,
        line=at["id"],
        title_en=_as_text(data.get("title_en")),
        questions_en=tuple(questions_en),
        answer_en=answer_en,
        valid_from=validity["valid_from"],
        valid_until=validity["valid_until"],
    )


def split_english(body: str) -> tuple[str, str, str]:
    """Split an entry's body at the English marker line: (Chinese, marker, English)."""
    lines = body.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == ENGLISH_MARKER:
            return "".join(lines[:i]), line, "".join(lines[i + 1:])
    return body, "", ""


def _string_list(
    value: Any, rel: str, line: int, problems: list[Problem], offset: int = 1
) -> list[_Text]:
    """Return the non-empty strings of a YAML list; offset turns YAML lines into file lines."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(_problem(rel, line, "kb_not_a_list"))
        return []
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            problems.append(_problem(rel, line, "kb_bad_list_item", item=repr(item)))
            continue
        text = _Text(item.strip())
        text.line = _line_of(item, line - offset) + offset
        out.append(text)
    return out


def _sources(value: Any, rel: str, line: int, problems: list[Problem]) -> list[Source]:
    if not isinstance(value, list):
        if value is not None:
            problems.append(_problem(rel, line, "kb_sources_not_list"))
        return []
    out = []
    for item in value:
        if not isinstance(item, dict) or not _as_text(item.get("ref")):
            problems.append(_problem(rel, line, "kb_source_fields"))
            continue
        date = _as_text(item.get("date"))
        if not (_is_date(date) or date in UNDATED):
            problems.append(_problem(rel, _line_of(item.get("ref"), line - 1) + 1,
                                     "kb_bad_source_date", value=date))
            continue
        out.append(Source(_as_text(item["ref"]), date, _as_text(item.get("by"))))
    return out


# ---------------------------------------------------------------- concepts and aliases


def _read_file(path: Path, rel: str, problems: list[Problem], shape: type, shape_key: str
               ) -> Any:
    """Return a YAML file's data if it exists, parses and has the expected shape (a list or a
    mapping), else None with the problem recorded."""
    if not path.exists():
        return None
    data = _parse_yaml(path.read_text(encoding="utf-8"), rel, 0, problems)
    if data is None:
        return None
    if not isinstance(data, shape):
        problems.append(_problem(rel, 1, shape_key))
        return None
    return data


def _items(path: Path, rel: str, problems: list[Problem], shape_key: str, item_key: str
           ) -> list[tuple[dict[Any, Any], int]]:
    """Return each mapping of a YAML file that is a list, with the line of its first key; a
    file of another shape, or an item that is no mapping, is reported."""
    out = []
    for item in _read_file(path, rel, problems, list, shape_key) or []:
        if not isinstance(item, dict):
            problems.append(_problem(rel, 1, item_key))
            continue
        out.append((item, min((_line_of(k, 1) for k in item), default=1)))
    return out


def _parse_concepts(path: Path, rel: str, problems: list[Problem]) -> list[Concept]:
    concepts = []
    for item, line in _items(path, rel, problems, "kb_concepts_shape", "kb_concept_shape"):
        missing = [k for k in ("id", "term", "question", "senses") if not item.get(k)]
        if missing:
            problems.append(_problem(rel, line, "kb_concept_missing", fields=", ".join(missing)))
            continue
        senses = []
        for sense in item["senses"] or []:
            sline = min((_line_of(k, line) for k in sense), default=line)
            if not all(sense.get(k) for k in ("id", "label", "entries")):
                problems.append(_problem(rel, sline, "kb_sense_fields"))
                continue
            senses.append(Sense(
                _as_text(sense["id"]), _as_text(sense["label"]),
                tuple(_as_text(c) for c in sense.get("cues") or []),
                tuple(_string_list(sense["entries"], rel, sline, problems, offset=0)),
                _as_text(sense.get("label_en")),
            ))
        if len(senses) < 2:
            problems.append(_problem(rel, line, "kb_two_senses", concept=item["id"]))
        term = _as_text(item["term"])
        terms = (term, *(_as_text(t) for t in item.get("terms") or []))
        general = tuple(_string_list(item.get("general"), rel, line, problems, offset=0))
        general_cues = tuple(_as_text(c) for c in item.get("general_cues") or DEFAULT_GENERAL_CUES)
        concepts.append(Concept(_as_text(item["id"]), term, tuple(dict.fromkeys(terms)),
                                _as_text(item["question"]), tuple(senses), general,
                                general_cues, _as_text(item.get("question_en"))))
    return concepts


def _parse_aliases(path: Path, rel: str, problems: list[Problem]
                   ) -> tuple[dict, tuple, tuple]:
    """Read aliases.yaml: aliases, terms repaired by sound, and words to ignore."""
    data = _read_file(path, rel, problems, dict, "kb_aliases_shape")
    if data is None:
        return {}, (), ()
    aliases = {}
    for wrong, right in (data.get("aliases") or {}).items():
        if not _as_text(right):
            problems.append(_problem(rel, _line_of(wrong, 1), "kb_alias_no_target", alias=wrong))
            continue
        aliases[_as_text(wrong)] = _as_text(right)
    terms = tuple(_as_text(t) for t in data.get("terms") or [])
    ignore = tuple(_string_list(data.get("ignore"), rel, 1, problems, offset=0))
    return aliases, terms, ignore


def _parse_scope(path: Path, rel: str, problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    """Read scope.yaml: the other platforms and the requests the bot declines."""
    data = _read_file(path, rel, problems, dict, "kb_scope_shape")
    if data is None:
        return {}
    return {key: tuple(_string_list(data.get(key), rel, 1, problems, offset=0))
            for key in SCOPE_LISTS}


def _parse_gaps(path: Path, rel: str, problems: list[Problem]) -> list[KnownGap]:
    """Read gaps.yaml: the questions the knowledge knows it cannot answer yet."""
    gaps = []
    for item, line in _items(path, rel, problems, "kb_gaps_shape", "kb_gap_shape"):
        at = {str(k): _line_of(k, line) for k in item}
        count = len(problems)
        for key in item:
            if key not in GAP_FIELDS:
                problems.append(_problem(rel, at[str(key)], "kb_gap_unknown_field", field=key,
                                         fields=", ".join(GAP_FIELDS)))
        missing = [k for k in GAP_REQUIRED if item.get(k) in (None, "", [])]
        if missing:
            problems.append(_problem(rel, line, "kb_gap_missing", fields=", ".join(missing)))
        gap_id = _as_text(item.get("id"))
        if gap_id and not _ID.match(gap_id):
            problems.append(_problem(rel, at["id"], "kb_bad_id", id=gap_id))
        checked = _as_text(item.get("checked"))
        if checked and not _is_date(checked):
            problems.append(_problem(rel, at["checked"], "kb_bad_as_of", value=checked))
        lists = {key: _string_list(item.get(key), rel, at.get(key, line), problems, offset=0)
                 for key in ("questions", "questions_en", "see")}
        for key in ("questions", "questions_en"):
            if item.get(key) and len(lists[key]) < MIN_GAP_QUESTIONS:
                problems.append(_problem(rel, at[key], "kb_few_questions",
                                         least=MIN_GAP_QUESTIONS, count=len(lists[key])))
        if len(problems) > count:
            continue
        gaps.append(KnownGap(
            id=gap_id, topic=_as_text(item["topic"]), questions=tuple(lists["questions"]),
            note=_as_text(item["note"]), checked=checked, see=tuple(lists["see"]), path=rel,
            line=at["id"], topic_en=_as_text(item["topic_en"]),
            questions_en=tuple(lists["questions_en"]), note_en=_as_text(item["note_en"])))
    return gaps


# ---------------------------------------------------------------- the whole base


def load_knowledge(root: Path) -> KnowledgeBase:
    """Load and validate everything under root; raise KnowledgeError listing every problem."""
    kb, problems = check_knowledge(root)
    errors = [p for p in problems if p.severity == "error"]
    if errors or kb is None:
        raise KnowledgeError(errors)
    return kb


def check_knowledge(root: Path) -> tuple[KnowledgeBase | None, list[Problem]]:
    """Load everything under root and return the base (None on errors) with all problems."""
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [_problem(str(root), 0, "kb_no_folder")]

    def rel(path: Path) -> str:
        return str(path.relative_to(root.parent)) if root.parent in path.parents else str(path)

    entries: dict[str, Entry] = {}
    for path in sorted((root / "entries").rglob("*")):
        if path.is_file() and path.suffix != ".md" and not path.name.startswith("."):
            problems.append(_problem(rel(path), 1, "kb_not_md", "warning"))
    for path in sorted((root / "entries").rglob("*.md")):
        entry = _parse_entry(path, rel(path), problems)
        if entry is None:
            continue
        if entry.id in entries:
            first = entries[entry.id]
            problems.append(_problem(entry.path, entry.line, "kb_duplicate_id", id=entry.id,
                                     where=f"{first.path}:{first.line}"))
            continue
        entries[entry.id] = entry
    concepts = _parse_concepts(root / "concepts.yaml", rel(root / "concepts.yaml"), problems)
    aliases, terms, ignore = _parse_aliases(root / "aliases.yaml", rel(root / "aliases.yaml"),
                                            problems)
    if not entries and not problems:
        problems.append(_problem(rel(root / "entries"), 0, "kb_no_entries"))
    scope = _parse_scope(root / "scope.yaml", rel(root / "scope.yaml"), problems)
    gaps: dict[str, KnownGap] = {}
    for gap in _parse_gaps(root / "gaps.yaml", rel(root / "gaps.yaml"), problems):
        taken: Entry | KnownGap | None = entries.get(gap.id) or gaps.get(gap.id)
        if taken is not None:
            problems.append(_problem(gap.path, gap.line, "kb_duplicate_id", id=gap.id,
                                     where=f"{taken.path}:{taken.line}"))
            continue
        gaps[gap.id] = gap
    kb = KnowledgeBase(entries, tuple(concepts), aliases, terms, warnings=(), **scope,
                       ignore=ignore, gaps=gaps)
    problems.extend(_cross_check(kb, rel(root / "concepts.yaml")))
    errors = [p for p in problems if p.severity == "error"]
    warnings = tuple(p for p in problems if p.severity != "error")
    if errors:
        return None, problems
    return (KnowledgeBase(entries, tuple(concepts), aliases, terms, warnings, **scope,
                          ignore=ignore, gaps=gaps), problems)


def _cross_check(kb: KnowledgeBase, concepts_rel: str) -> Iterable[Problem]:
    """Check references between files and questions shared by two entries."""
    concept_ids = {c.id for c in kb.concepts}
    for entry in kb.entries.values():
        if not entry.has_english or len(entry.questions_en) < MIN_QUESTIONS_EN:
            # English speakers are first-class users: every entry answers them too.
            yield _problem(entry.path, entry.line, "kb_no_english", "error",
                           least=MIN_QUESTIONS_EN, marker=ENGLISH_MARKER)
        for question in entry.questions:
            if not has_han(question):
                # Harmless to matching, but the Chinese list is what authors review as Chinese.
                yield _problem(entry.path, _line_of(question, entry.line), "kb_english_question",
                               "warning", question=question)
        for ref in entry.related:
            if ref not in kb.entries:
                yield _problem(entry.path, _line_of(ref, entry.line), "kb_unknown_related",
                               ref=ref)
        for cid in entry.concepts:
            if cid not in concept_ids:
                yield _problem(entry.path, _line_of(cid, entry.line), "kb_unknown_concept",
                               concept=cid, defined=", ".join(sorted(concept_ids)) or "-")
    for concept in kb.concepts:
        for ref in concept.entries:
            if ref not in kb.entries:
                yield _problem(concepts_rel, _line_of(ref, 1), "kb_concept_unknown_entry",
                               concept=concept.id, ref=ref)
    for gap in kb.gaps.values():
        for ref in gap.see:
            if ref not in kb.entries:
                yield _problem(gap.path, _line_of(ref, gap.line), "kb_unknown_related", ref=ref)
    normalise = kb.normalizer()
    seen: dict[str, tuple[Entry | KnownGap, Any]] = {}
    # A gap's question that an entry also lists would be both answered and not: one must go.
    askers: list[Entry | KnownGap] = [*kb.entries.values(), *kb.gaps.values()]
    for asker in askers:
        title = asker.title if isinstance(asker, Entry) else asker.topic
        for question in (title, *asker.questions, *asker.questions_en):
            # Punctuation and spaces tell no two questions apart ("开店吗" = "开店吗？").
            key = "".join(ch for ch in normalise(question) if ch.isalnum())
            owner = seen.get(key)
            if owner and owner[0].id == asker.id and owner[1] is title:
                continue  # a title repeated among its own questions does no harm
            if owner:
                first, first_q = owner
                line = _line_of(question, asker.line)
                if first.id != asker.id:
                    yield _problem(asker.path, line, "kb_question_elsewhere", question=question,
                                   other=first.id,
                                   where=f"{first.path}:{_line_of(first_q, first.line)}")
                else:
                    yield _problem(asker.path, line, "kb_question_repeated", question=question,
                                   at=_line_of(first_q, first.line))
            seen.setdefault(key, (asker, question))
