"""Render channel-neutral replies with jinja2 templates, one template per output format."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from functools import cache

import jinja2
from markupsafe import Markup

from bot.copy import frame, say
from bot.dialogue.replies import Reply
from bot.kb.loader import BASIS_LABELS_EN, UNDATED

_FORMATS = {"text": "reply.txt.j2", "html": "reply.html.j2"}
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_TAG = re.compile(r"</?[a-z]+>")

def _rich(text: str) -> Markup:
    """Escape answer text for HTML and turn its **bold** marks into <b> tags."""
    return Markup(_BOLD.sub(r"<b>\1</b>", html.escape(text, quote=False)))


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["rich"] = _rich
    return env


def render(reply: Reply, fmt: str = "text") -> str:
    """Render reply in fmt ("text" or "html"); HTML escapes every text it did not write."""
    template = _environment(fmt.startswith("html")).get_template(_FORMATS[fmt])
    labels = frame(reply.lang)
    entry = reply.entry
    english = reply.lang == "en" and entry is not None and entry.has_english
    if entry is None or english or reply.lang != "en":
        labels["note"] = ""  # the note says only that an English reader gets Chinese text
    answer = {
        "title": (entry.title_en if english else entry.title) if entry else "",
        "text": (entry.answer_en if english else entry.answer) if entry else "",
        "basis": ((BASIS_LABELS_EN[entry.basis] if reply.lang == "en" else entry.basis_label)
                  if entry else ""),
    }
    # "undated" is how authors write it; readers get it in their language.
    sources = [{"by": s.by, "ref": s.ref,
                "date": say(reply.lang, "undated") if s.date in UNDATED else s.date}
               for s in (entry.sources if entry else ())]
    return template.render(reply=reply, entry=entry, answer=answer, sources=sources,
                           t=labels).strip()


def split_message(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split text into parts of at most limit (as measured) on paragraph boundaries.

    A paragraph longer than the limit is split on line breaks, and a line longer than that
    between characters, never inside an HTML entity; such a paragraph loses its HTML tags
    first, since a tag cut in two would make the part unparseable. Nothing else is lost:
    joining the parts with blank lines gives back the paragraphs.
    """
    return _pack(_pieces(text, limit, measure), "\n\n", limit, measure)


def _pack(pieces: Iterable[str], separator: str, limit: int,
          measure: Callable[[str], int]) -> list[str]:
    """Join pieces with separator into as few parts as fit the limit, in order."""
    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if current and measure(candidate) > limit:
            parts.append(current)
            current = piece
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    """Return the paragraphs, each over-long one cut into parts that fit."""
    pieces = []
    for paragraph in (p.strip("\n") for p in text.split("\n\n")):
        if not paragraph:
            continue
        if measure(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        chunks = (chunk for line in _TAG.sub("", paragraph).split("\n")
                  for chunk in _hard_split(line, limit, measure))
        pieces.extend(_pack(chunks, "\n", limit, measure))
    return pieces


def _hard_split(line: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    """Cut an over-long line between characters, outside HTML entities."""
    chunks = []
    start = 0
    while measure(line[start:]) > limit:
        end, safe = start, start
        inside = False
        while end < len(line) and measure(line[start:end + 1]) <= limit:
            ch = line[end]
            inside = inside or ch in "<&"
            end += 1
            if inside and ch in ">;":
                inside = False
            if not inside:
                safe = end
        safe = safe if safe > start else end  # a single tag longer than the limit
        chunks.append(line[start:safe])
        start = safe
    chunks.append(line[start:])
    return chunks
