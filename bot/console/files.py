"""The knowledge files as the console edits them: a draft copy, entry forms, atomic writes.

Edits go to a draft copy of the knowledge folder (`$BOT_DATA_DIR/console/draft`), never to
the served files: publishing validates and evaluates the draft, then copies it into the
knowledge folder. Changes made on the server meanwhile (a `git pull`, a hand edit) flow into
the draft unless the draft changed the same file, which is then a conflict to settle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.kb.loader import (
    ENGLISH_MARKER,
    KnowledgeBase,
    Problem,
    check_knowledge,
    split_english,
)

TOP_FILES = ("concepts.yaml", "aliases.yaml", "scope.yaml", "gaps.yaml")
_ID_CHARS = re.compile(r"^[a-z0-9-]+$")
_DATE_SHAPE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class Conflict(Exception):
    """The file changed since the editor opened it; `current` is what is there now."""

    def __init__(self, rel: str, current: str | None) -> None:
        super().__init__(rel)
        self.rel = rel
        self.current = current


def digest(text: str | None) -> str:
    """Fingerprint a file's text ("" for a file that does not exist)."""
    return "" if text is None else hashlib.sha256(text.encode()).hexdigest()


def atomic_write(path: Path, text: str) -> None:
    """Write a file whole or not at all: a temporary file beside it, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def unified_diff(before: str | None, after: str | None, name: str,
                 labels: tuple[str, str] = ("before", "after")) -> str:
    """A unified diff of two versions of a file (either may be missing)."""
    lines = difflib.unified_diff((before or "").splitlines(keepends=True),
                                 (after or "").splitlines(keepends=True),
                                 f"{labels[0]}/{name}", f"{labels[1]}/{name}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def safe_rel(rel: str) -> str:
    """Return a knowledge-relative path the console may touch, or raise ValueError."""
    rel = rel.strip().replace("\\", "/")
    parts = rel.split("/")
    if rel in TOP_FILES:
        return rel
    if (len(parts) >= 2 and parts[0] == "entries" and rel.endswith(".md")
            and all(p and not p.startswith(".") and p != ".." for p in parts)
            and all(re.fullmatch(r"[\w.-]+", p) for p in parts)):
        return rel
    raise ValueError(f"not a knowledge file the console edits: {rel!r}")


def manifest(root: Path) -> dict[str, str]:
    """Map every (non-hidden) file under root to the hash of its bytes."""
    out = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not any(p.startswith(".") for p in rel.split("/")):
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def copy_tree(source: Path, target: Path) -> None:
    """Copy a knowledge folder (hidden files left out) to a new folder."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))


# ---------------------------------------------------------------------- entry forms


@dataclass
class SourceRow:
    ref: str = ""
    by: str = ""
    date: str = ""


@dataclass
class EntryForm:
    """Every field of an entry as the edit form shows it; composes the Markdown file."""

    id: str = ""
    title: str = ""
    questions: list[str] = field(default_factory=list)
    title_en: str = ""
    questions_en: list[str] = field(default_factory=list)
    topic: str = ""
    concepts: list[str] = field(default_factory=list)
    basis: str = ""
    sources: list[SourceRow] = field(default_factory=list)
    as_of: str = ""
    valid_from: str = ""
    valid_until: str = ""
    related: list[str] = field(default_factory=list)
    answer: str = ""
    answer_en: str = ""

    @classmethod
    def parse(cls, text: str) -> EntryForm | None:
        """Read an entry file into a form; None when it cannot be (edit it as text then)."""
        lines = text.splitlines(keepends=True)
        if not lines or lines[0].strip() != "---":
            return None
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            return None
        try:
            data = yaml.safe_load("".join(lines[1:end]))
        except (yaml.YAMLError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            sources = [SourceRow(_text(s.get("ref")), _text(s.get("by")), _text(s.get("date")))
                       for s in data.get("sources") or []]
            form = cls(
                id=_text(data.get("id")), title=_text(data.get("title")),
                questions=_texts(data.get("questions")), title_en=_text(data.get("title_en")),
                questions_en=_texts(data.get("questions_en")), topic=_text(data.get("topic")),
                concepts=_texts(data.get("concepts")), basis=_text(data.get("basis")),
                sources=sources, as_of=_text(data.get("as_of")),
                valid_from=_text(data.get("valid_from")),
                valid_until=_text(data.get("valid_until")), related=_texts(data.get("related")))
        except (AttributeError, TypeError):
            return None  # a shape the form cannot show (a source that is not a mapping...)
        body = "".join(lines[end + 1:])
        chinese, marker, english = split_english(body)
        form.answer, form.answer_en = chinese.strip(), english.strip()
        if not marker and english:
            return None
        return form

    @classmethod
    def from_fields(cls, get: Any, getall: Any) -> EntryForm:
        """Build a form from posted fields (get(name) -> str, getall(name) -> list[str])."""
        refs, bys, dates = getall("source_ref"), getall("source_by"), getall("source_date")
        sources = [SourceRow(r.strip(), b.strip(), d.strip())
                   for r, b, d in zip(refs, bys, dates, strict=False)
                   if r.strip() or b.strip() or d.strip()]
        return cls(
            id=get("id").strip(), title=_one_line(get("title")),
            questions=_lines(get("questions")), title_en=_one_line(get("title_en")),
            questions_en=_lines(get("questions_en")), topic=_one_line(get("topic")),
            concepts=_words(get("concepts")), basis=get("basis").strip(), sources=sources,
            as_of=get("as_of").strip(), valid_from=get("valid_from").strip(),
            valid_until=get("valid_until").strip(), related=_words(get("related")),
            answer=_body(get("answer")), answer_en=_body(get("answer_en")))

    def compose(self) -> str:
        """Write the entry file in the knowledge folder's own layout."""
        out = ["---", f"id: {_scalar(self.id)}", f"title: {_scalar(self.title)}"]
        out += _block("questions", self.questions)
        if self.title_en:
            out.append(f"title_en: {_scalar(self.title_en)}")
        out += _block("questions_en", self.questions_en)
        out.append(f"topic: {_scalar(self.topic)}")
        if self.concepts:
            out.append(f"concepts: {_flow(self.concepts)}")
        out.append(f"basis: {_scalar(self.basis)}")
        if self.sources:
            out.append("sources:")
            for source in self.sources:
                out.append(f"  - ref: {_scalar(source.ref)}")
                if source.by:
                    out.append(f"    by: {_scalar(source.by)}")
                out.append(f"    date: {_date(source.date)}")
        out.append(f"as_of: {_date(self.as_of)}")
        for key in ("valid_from", "valid_until"):
            if getattr(self, key):
                out.append(f"{key}: {_date(getattr(self, key))}")
        if self.related:
            out.append(f"related: {_flow(self.related)}")
        out.append("---")
        text = "\n".join(out) + "\n" + self.answer.strip() + "\n"
        if self.answer_en.strip():
            text += f"\n{ENGLISH_MARKER}\n{self.answer_en.strip()}\n"
        return text


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value).strip()


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("not a list")
    return [_text(v) for v in value]


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _lines(value: str) -> list[str]:
    return [_one_line(line.removeprefix("- ")) for line in value.splitlines() if line.strip()]


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[\s,，、]+", value) if w]


def _body(value: str) -> str:
    return "\n".join(line.rstrip() for line in value.replace("\r\n", "\n").split("\n")).strip()


def _scalar(value: str) -> str:
    """A YAML scalar: plain when it reads back as the same text, else double-quoted."""
    try:
        plain = value and yaml.safe_load(f"k: {value}") == {"k": value}
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value, ensure_ascii=False)


def _date(value: str) -> str:
    """Dates are written plain (2025, 2025-08, 2025-08-25, undated), anything else quoted."""
    if _DATE_SHAPE.match(value) or _scalar(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(i if _ID_CHARS.match(i) else json.dumps(i, ensure_ascii=False)
                           for i in items) + "]"


def _block(key: str, items: list[str]) -> list[str]:
    return [f"{key}:", *(f"  - {_scalar(i)}" for i in items)] if items else []


# ---------------------------------------------------------------------- the draft


@dataclass(frozen=True)
class Checked:
    """What the real loader says about a version of the knowledge."""

    kb: KnowledgeBase | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class Draft:
    """The console's working copy of the knowledge folder, kept in step with the served one."""

    def __init__(self, live: Path, root: Path) -> None:
        self.live = Path(live)
        self.dir = Path(root) / "draft"
        self._base_file = Path(root) / "draft-base.json"
        self._lock = threading.RLock()
        if not self.dir.is_dir() or not self._base_file.is_file():
            self.reset()

    # ------------------------------------------------------------------ whole-folder moves

    def reset(self) -> None:
        """Make the draft a fresh copy of the served knowledge."""
        with self._lock:
            staging = self.dir.with_name("draft.new")
            shutil.rmtree(staging, ignore_errors=True)
            copy_tree(self.live, staging)
            old = self.dir.with_name("draft.old")
            shutil.rmtree(old, ignore_errors=True)
            if self.dir.exists():
                self.dir.rename(old)
            staging.rename(self.dir)
            shutil.rmtree(old, ignore_errors=True)
            self._save_base(manifest(self.live))

    def _base(self) -> dict[str, str]:
        try:
            data = json.loads(self._base_file.read_text(encoding="utf-8"))
            return dict(data) if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_base(self, base: Mapping[str, str]) -> None:
        atomic_write(self._base_file, json.dumps(dict(base), indent=0, sort_keys=True))

    def sync(self) -> list[str]:
        """Bring changes made to the served files into the draft; return the conflicts.

        A file the draft left alone takes the server's version; a file both changed stays as
        the draft has it and is reported until settled with resolve().
        """
        with self._lock:
            live, base, draft = manifest(self.live), self._base(), manifest(self.dir)
            conflicts = []
            changed = False
            for rel in sorted(live.keys() | base.keys()):
                if live.get(rel) == base.get(rel):
                    continue
                if draft.get(rel) == base.get(rel):
                    self._take(rel)
                elif draft.get(rel) != live.get(rel):
                    conflicts.append(rel)
                    continue
                changed = True
                if rel in live:
                    base[rel] = live[rel]
                else:
                    base.pop(rel, None)
            if changed:
                self._save_base(base)
            return conflicts

    def _take(self, rel: str) -> None:
        source = self.live / rel
        if source.is_file():
            atomic_write(self.dir / rel, source.read_text(encoding="utf-8"))
        else:
            (self.dir / rel).unlink(missing_ok=True)

    def resolve(self, rel: str, take_server: bool) -> None:
        """Settle a conflict: take the server's version, or keep the draft's."""
        with self._lock:
            if take_server:
                self._take(rel)
            base = self._base()
            live = manifest(self.live)
            if rel in live:
                base[rel] = live[rel]
            else:
                base.pop(rel, None)
            self._save_base(base)

    def pending(self) -> list[str]:
        """Files where the draft differs from the served knowledge."""
        with self._lock:
            live, draft = manifest(self.live), manifest(self.dir)
        return sorted(rel for rel in live.keys() | draft.keys() if live.get(rel) != draft.get(rel))

    def publish_into_live(self, expected: Mapping[str, str]) -> list[str]:
        """Copy the draft over the served files (each written atomically); return them.

        expected is the draft's manifest when it was checked and evaluated. Refuses
        (ValueError) when the draft changed since (an edit saved meanwhile is not what was
        evaluated) or the served files changed since the draft last looked.
        """
        with self._lock:
            live, base, draft = manifest(self.live), self._base(), manifest(self.dir)
            if draft != expected:
                raise ValueError("the draft changed while it was being evaluated")
            if live != base:
                raise ValueError("the knowledge folder on the server changed meanwhile")
            touched = []
            for rel in sorted(draft.keys() | live.keys()):
                if draft.get(rel) == live.get(rel):
                    continue
                touched.append(rel)
                if rel in draft:
                    atomic_write(self.live / rel, (self.dir / rel).read_text(encoding="utf-8"))
                else:
                    (self.live / rel).unlink()
            self._save_base(manifest(self.live))
            return touched

    # ------------------------------------------------------------------ single files

    def files(self) -> list[str]:
        with self._lock:
            return list(manifest(self.dir))

    def read(self, rel: str) -> str | None:
        path = self.dir / safe_rel(rel)
        with self._lock:
            return path.read_text(encoding="utf-8") if path.is_file() else None

    def read_live(self, rel: str) -> str | None:
        path = self.live / safe_rel(rel)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def write(self, rel: str, text: str | None, expected: str) -> str | None:
        """Write (or, with None, delete) a draft file if it is still what the editor opened.

        expected is the digest of the text the editor started from ("" for a new file).
        Raises Conflict with what is there now otherwise; returns the text replaced.
        """
        rel = safe_rel(rel)
        with self._lock:
            current = self.read(rel)
            if digest(current) != expected:
                raise Conflict(rel, current)
            path = self.dir / rel
            if text is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, text)
            return current

    @contextlib.contextmanager
    def candidate(self, overrides: Mapping[str, str | None] | None = None) -> Iterator[Path]:
        """A temporary copy of the draft with some files replaced (None: removed)."""
        with tempfile.TemporaryDirectory(prefix="console-check-") as temp:
            root = Path(temp) / "knowledge"
            with self._lock:
                copy_tree(self.dir, root)
            for rel, text in (overrides or {}).items():
                path = root / safe_rel(rel)
                if text is None:
                    path.unlink(missing_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
            yield root

    def check(self, overrides: Mapping[str, str | None] | None = None) -> Checked:
        """Run the real loader on the draft with some files replaced."""
        with self.candidate(overrides) as root:
            return check_folder(root)


def check_folder(root: Path) -> Checked:
    """Run the loader on a folder; problem paths become knowledge-relative (entries/...)."""
    try:
        kb, problems = check_knowledge(root)
    except Exception as exc:  # the YAML library raises plain errors for some bad values
        return Checked(None, [Problem("?", 1, f"the files cannot be read: {exc}")])
    prefix = root.name + "/"
    return Checked(kb, [replace(p, path=p.path.removeprefix(prefix)) for p in problems])
