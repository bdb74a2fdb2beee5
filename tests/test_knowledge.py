"""The knowledge loader: the real base is valid, and every kind of mistake names file:line."""

import re
from pathlib import Path

import pytest

from bot.kb.loader import BASIS_LABELS, KnowledgeError, check_knowledge, load_knowledge
from tests.conftest import KNOWLEDGE


def test_real_knowledge_is_valid_and_covers_the_design_card() -> None:
    kb, problems = check_knowledge(KNOWLEDGE)
    assert kb is not None, problems
    assert not [p for p in problems if p.severity == "error"]
    assert len(kb.entries) >= 20
    for entry in kb.entries.values():
        assert len(entry.questions) >= 3
        assert entry.basis in BASIS_LABELS and entry.sources and entry.as_of
    concepts = {c.term for c in kb.concepts}
    assert {"个体店", "限流", "投流", "引流"} <= concepts
    getidian = next(c for c in kb.concepts if c.term == "个体店")
    assert len(getidian.senses) == 2
    text = " ".join(e.answer for e in kb.entries.values())
    for term in ("内容加热", "聚光", "千帆", "直客", "号店一体", "号店分离", "引流款", "私域"):
        assert term in text


def _entry(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _errors(root: Path, lang: str = "en") -> list[str]:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(root)
    return [p.text(lang) for p in info.value.problems]


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_duplicate_id_names_both_places(knowledge_copy: Path) -> None:
    original = knowledge_copy / "entries/tools/shutiao-what.md"
    copy = knowledge_copy / "entries/tools/zz-copy.md"
    text = _entry(original).replace("title: 薯条是什么？是投流工具吗？", "title: 另一个标题")
    text = re.sub(r"(?m)^(  - .*)$", r"\1（副本）", text)
    copy.write_text(text, encoding="utf-8")
    errors = _errors(knowledge_copy)
    assert any(e.startswith("knowledge/entries/tools/zz-copy.md:2: duplicate id 'shutiao-what'")
               and "shutiao-what.md:2" in e for e in errors), errors


def test_unknown_related_entry(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(_entry(path).replace("related: [zhike-pressure", "related: [no-such-entry"),
                    encoding="utf-8")
    line = _line_of(path, "no-such-entry")
    assert (f"knowledge/entries/zhike/zhike-what.md:{line}: related entry 'no-such-entry' "
            "does not exist") in _errors(knowledge_copy)


def test_missing_field_and_empty_answer(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-daitou.md"
    head, _, _ = _entry(path).partition("\n---\n")
    path.write_text(head.replace("topic: 直客与代投\n", "") + "\n---\n\n", encoding="utf-8")
    errors = _errors(knowledge_copy)
    assert any(e.startswith("knowledge/entries/zhike/zhike-daitou.md:")
               and "missing field 'topic'" in e for e in errors), errors
    assert any("zhike-daitou.md:" in e and "answer" in e and "empty" in e for e in errors)


def test_same_question_in_two_entries(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-daitou.md"
    path.write_text(_entry(path).replace("  - 免费代投团队是官方的吗", "  - 直客是官方的人吗"),
                    encoding="utf-8")
    here = f"knowledge/entries/zhike/zhike-daitou.md:{_line_of(path, '直客是官方的人吗')}"
    other = knowledge_copy / "entries/zhike/zhike-what.md"
    there = f"knowledge/entries/zhike/zhike-what.md:{_line_of(other, '直客是官方的人吗')}"
    errors = _errors(knowledge_copy)
    # Reported at the later file, naming the earlier one.
    assert any(e.startswith(f"{there}: question '直客是官方的人吗' is also in entry "
                            f"'zhike-daitou' ({here})") for e in errors), errors


@pytest.mark.parametrize(("file", "before", "after"), [
    ("entries/zhike/zhike-what.md", "topic: 直客与代投", "topic: [直客与代投"),  # unclosed [
    ("entries/zhike/zhike-what.md", "title: 直客是什么人", "title 直客是什么人"),  # no ':'
    ("aliases.yaml", "  思域: 私域", "  思域 私域"),
])
def test_yaml_syntax_error_points_at_the_line_where_it_starts(
        knowledge_copy: Path, file: str, before: str, after: str) -> None:
    path = knowledge_copy / file
    assert before in _entry(path)
    path.write_text(_entry(path).replace(before, after, 1), encoding="utf-8")
    errors = [e for e in _errors(knowledge_copy) if "YAML" in e]
    # The line the author broke, not the line where the parser gave up (one later).
    assert len(errors) == 1 and errors[0].startswith(
        f"knowledge/{file}:{_line_of(path, after)}: YAML syntax error"), errors


def test_bad_basis_date_and_unknown_field(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    text = (_entry(path).replace("basis: 服务商或从业者经验", "basis: 小道消息")
            .replace("as_of: 2025", "as_of: 去年").replace("topic:", "topik: x\ntopic:"))
    path.write_text(text, encoding="utf-8")
    errors = "\n".join(_errors(knowledge_copy))
    assert f"zhike-what.md:{_line_of(path, 'basis:')}: basis '小道消息'" in errors
    assert f"zhike-what.md:{_line_of(path, 'as_of:')}: as_of '去年'" in errors
    assert f"zhike-what.md:{_line_of(path, 'topik:')}: unknown field 'topik'" in errors


def test_concept_naming_unknown_entry(knowledge_copy: Path) -> None:
    path = knowledge_copy / "concepts.yaml"
    path.write_text(_entry(path).replace("entries: [getidian-personal]",
                                         "entries: [getidian-personnel]"), encoding="utf-8")
    line = _line_of(path, "getidian-personnel")
    assert (f"knowledge/concepts.yaml:{line}: concept 'getidian' names unknown entry "
            "'getidian-personnel'") in _errors(knowledge_copy)


def test_missing_front_matter(knowledge_copy: Path) -> None:
    (knowledge_copy / "entries/new.md").write_text("只是一段话\n", encoding="utf-8")
    assert any(e.startswith("knowledge/entries/new.md:1: missing front matter")
               for e in _errors(knowledge_copy))


def test_kb_snapshot_round_trips() -> None:
    from bot.kb.loader import KnowledgeBase

    kb = load_knowledge(KNOWLEDGE)
    again = KnowledgeBase.from_json(kb.to_json())
    assert again.entries == kb.entries and again.concepts == kb.concepts
    assert again.aliases == kb.aliases
    from bot.kb.loader import SCOPE_LISTS
    for name in SCOPE_LISTS:
        assert getattr(again, name) == getattr(kb, name) != (), name


def test_messages_are_chinese_and_english_on_request(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(_entry(path).replace("related: [zhike-pressure", "related: [no-such-entry"),
                    encoding="utf-8")
    (knowledge_copy / "entries/notes.txt").write_text("草稿\n", encoding="utf-8")
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is None
    line = _line_of(path, "no-such-entry")
    chinese = [str(p) for p in problems]  # the maintainers' language is the default
    assert (f"knowledge/entries/zhike/zhike-what.md:{line}: 相关条目 'no-such-entry' "
            "不存在") in chinese
    assert ("knowledge/entries/notes.txt:1: 提醒：没有读取：条目必须是 .md 文件（改名为 .md，"
            "或移出 entries/）") in chinese
    english = [p.text("en") for p in problems]
    assert (f"knowledge/entries/zhike/zhike-what.md:{line}: related entry 'no-such-entry' "
            "does not exist") in english
    assert "knowledge/entries/notes.txt:1: warning: not read: entries are .md files" in " ".join(
        english)
    # Every message has both languages: no English line falls back to Chinese.
    assert not [t for t in english if re.search(r"[\u4e00-\u9fff]", t.split(": ", 1)[1]
                                                .replace("草稿", ""))]


def test_a_byte_order_mark_is_harmless(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Windows Notepad saves it
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is not None and "zhike-what" in kb.entries, [str(p) for p in problems]


def test_other_files_in_entries_are_reported_not_ignored(knowledge_copy: Path) -> None:
    (knowledge_copy / "entries/zhike/new-entry.txt").write_text("---\nid: x\n---\n", "utf-8")
    (knowledge_copy / "entries/.DS_Store").write_bytes(b"\0")  # hidden files stay unmentioned
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is not None  # a warning, not an error: the bot still serves
    assert [(p.path, p.severity) for p in problems] == [
        ("knowledge/entries/zhike/new-entry.txt", "warning")]


def test_an_english_question_among_the_chinese_ones_is_a_warning(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(_entry(path).replace("  - 直客算是销售吗", "  - is a zhike a salesperson"),
                    encoding="utf-8")
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is not None  # it still matches; the list is just not where authors look for it
    line = _line_of(path, "is a zhike a salesperson")
    assert [p.text("en") for p in problems] == [
        f"knowledge/entries/zhike/zhike-what.md:{line}: warning: 'is a zhike a salesperson' is "
        "an English question: move it to questions_en (questions holds the Chinese ones)"]


def test_questions_differing_only_by_punctuation_are_duplicates(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-daitou.md"
    path.write_text(_entry(path).replace("  - 免费代投团队是官方的吗", "  - 直客是官方的人吗？"),
                    encoding="utf-8")
    here = f"knowledge/entries/zhike/zhike-daitou.md:{_line_of(path, '直客是官方的人吗？')}"
    other = knowledge_copy / "entries/zhike/zhike-what.md"
    there = f"knowledge/entries/zhike/zhike-what.md:{_line_of(other, '直客是官方的人吗')}"
    assert (f"{there}: question '直客是官方的人吗' is also in entry 'zhike-daitou' "
            f"({here})") in _errors(knowledge_copy)


def test_a_question_repeated_within_one_entry(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(_entry(path).replace("  - 直客算是销售吗", "  - 直客是官方的人吗！"),
                    encoding="utf-8")
    first = _line_of(path, "直客是官方的人吗")
    again = _line_of(path, "直客是官方的人吗！")
    assert (f"knowledge/entries/zhike/zhike-what.md:{again}: question '直客是官方的人吗！' is "
            f"already in this entry (line {first})") in _errors(knowledge_copy)
    assert (f"knowledge/entries/zhike/zhike-what.md:{again}: 问法 '直客是官方的人吗！' 在这个条目"
            f"里已经有了（第 {first} 行）") in _errors(knowledge_copy, "zh")


def test_unknown_concept_lists_the_defined_ones(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/shop/getidian-personal.md"
    path.write_text(_entry(path).replace("concepts: [getidian]", "concepts: [getidan]"),
                    encoding="utf-8")
    defined = sorted(c.id for c in load_knowledge(KNOWLEDGE).concepts)
    assert "getidian" in defined and len(defined) >= 3
    line = _line_of(path, "getidan")
    assert (f"knowledge/entries/shop/getidian-personal.md:{line}: concept 'getidan' is not "
            f"defined in concepts.yaml (defined: {', '.join(defined)})") in _errors(
        knowledge_copy)


@pytest.mark.parametrize("word", ["media report", "Media", "媒体报道", "media"])
def test_basis_may_be_written_in_english(knowledge_copy: Path, word: str) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(_entry(path).replace("basis: 服务商或从业者经验", f"basis: {word}"),
                    encoding="utf-8")
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is not None, [str(p) for p in problems]
    assert kb.entries["zhike-what"].basis == "media"


def test_every_accepted_basis_word_is_documented() -> None:
    from bot.kb.loader import _BASIS_WORDS

    guide = (KNOWLEDGE / "README.md").read_text("utf-8")
    assert [word for word in _BASIS_WORDS if f"`{word}`" not in guide] == []


def test_known_gaps_are_valid_bilingual_and_point_to_entries() -> None:
    kb = load_knowledge(KNOWLEDGE)
    assert len(kb.gaps) >= 7  # the seven seller questions no source was found for, at least
    for gap in kb.gaps.values():
        assert gap.id not in kb.entries
        assert gap.topic and gap.topic_en and gap.note and gap.note_en and gap.checked
        assert len(gap.questions) >= 3 and len(gap.questions_en) >= 3
        assert gap.see and all(ref in kb.entries for ref in gap.see)
        assert gap.path == "knowledge/gaps.yaml" and gap.line > 1


def test_known_gaps_round_trip_with_the_snapshot() -> None:
    from bot.kb.loader import KnowledgeBase

    kb = load_knowledge(KNOWLEDGE)
    assert KnowledgeBase.from_json(kb.to_json()).gaps == kb.gaps != {}


def test_a_broken_known_gap_names_file_and_line(knowledge_copy: Path) -> None:
    path = knowledge_copy / "gaps.yaml"
    text = (_entry(path)
            .replace("  see: [shop-types-deposit, shop-six-types]",
                     "  see: [shop-types-deposit, no-such-entry]")
            .replace("  topic_en: the shop deposit for each product category\n",
                     "  topic_en: the shop deposit for each product category\n  owner: me\n")
            .replace("  checked: 2026-11-27\n  see: [chuhai-aftersales", "  checked: 最近\n"
                     "  see: [chuhai-aftersales"))
    path.write_text(text, encoding="utf-8")
    errors = _errors(knowledge_copy)
    assert (f"knowledge/gaps.yaml:{_line_of(path, 'owner: me')}: unknown field 'owner'"
            in "\n".join(errors)), errors
    assert (f"knowledge/gaps.yaml:{_line_of(path, 'checked: 最近')}: as_of '最近'"
            in "\n".join(errors)), errors
    # The gap with the bad field is dropped, so its unknown reference is not checked; the
    # unknown field is the one problem reported for it.
    assert not any("no-such-entry" in e for e in errors)


def test_a_known_gap_may_not_reuse_an_entry_id_or_question(knowledge_copy: Path) -> None:
    path = knowledge_copy / "gaps.yaml"
    text = (_entry(path).replace("- id: seven-day-returns", "- id: shop-commission")
            .replace("    - 珠宝类目的保证金要交多少", "    - 开店保证金要交多少"))
    path.write_text(text, encoding="utf-8")
    errors = "\n".join(_errors(knowledge_copy))
    assert (f"knowledge/gaps.yaml:{_line_of(path, 'id: shop-commission')}: duplicate id "
            "'shop-commission'") in errors
    assert (f"knowledge/gaps.yaml:{_line_of(path, '开店保证金要交多少')}: question "
            "'开店保证金要交多少' is also in entry 'shop-types-deposit'") in errors


def test_a_known_gap_pointing_at_no_entry(knowledge_copy: Path) -> None:
    path = knowledge_copy / "gaps.yaml"
    path.write_text(_entry(path).replace("  see: [shop-types-deposit, shop-six-types]",
                                         "  see: [shop-types-deposit, no-such-entry]"),
                    encoding="utf-8")
    line = _line_of(path, "no-such-entry")
    assert (f"knowledge/gaps.yaml:{line}: related entry 'no-such-entry' does not exist"
            in _errors(knowledge_copy))


def test_a_known_gap_missing_its_english(knowledge_copy: Path) -> None:
    path = knowledge_copy / "gaps.yaml"
    text = _entry(path)
    start = text.index("- id: tax-and-invoices")
    path.write_text(text[:start] + re.sub(r"(?m)^  note_en: .*\n", "", text[start:]),
                    encoding="utf-8")
    line = _line_of(path, "- id: tax-and-invoices")
    assert (f"knowledge/gaps.yaml:{line}: the known gap lacks note_en"
            in _errors(knowledge_copy))


def test_a_gaps_file_of_the_wrong_shape_says_so(knowledge_copy: Path) -> None:
    (knowledge_copy / "gaps.yaml").write_text("category-deposit: 各类目保证金\n", encoding="utf-8")
    assert ("knowledge/gaps.yaml:1: gaps.yaml must be a list of known gaps ('- id: ...')"
            in _errors(knowledge_copy))
