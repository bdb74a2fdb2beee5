"""Answer quality features through the real engine and knowledge: freshness, follow-ups, long
messages, English, the learned answerability judgement and the knowledge rules behind them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from bot.channels.admin import AdminConsole
from bot.channels.render import render
from bot.dialogue import answerability
from bot.dialogue.engine import ConversationKey, Engine, Turn
from bot.dialogue.senses import language
from bot.kb.freshness import judge, needing_review
from bot.kb.loader import check_knowledge
from bot.kb.service import KnowledgeService
from bot.settings import Settings
from bot.store.sqlite import SQLiteStore


def _at(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def _engine(service: KnowledgeService, day: str, tmp_path: Path) -> Engine:
    return Engine(service, SQLiteStore(tmp_path / f"{day}.sqlite"), Settings(data_dir=tmp_path),
                  clock=lambda: _at(day))


def test_an_ended_period_is_said_with_the_answer(service: KnowledgeService,
                                                 tmp_path: Path) -> None:
    key = ConversationKey("t", "c", "u")
    during = _engine(service, "2026-01-10", tmp_path).reply(key, "百万免佣计划是怎么算的")
    assert during.entry_id == "baiwan-mianyong"
    assert not any("已经结束" in n for n in during.notices)
    after = _engine(service, "2026-11-27", tmp_path).reply(key, "百万免佣计划是怎么算的")
    assert after.entry_id == "baiwan-mianyong"
    text = render(after)
    assert "2025-09-01至2026-08-31" in text and "已经结束" in text


def test_asking_about_commission_today_says_the_scheme_has_ended(
        service: KnowledgeService, tmp_path: Path) -> None:
    reply = _engine(service, "2026-11-27", tmp_path).reply(
        ConversationKey("t", "c", "u"), "现在在小红书开店卖货平台抽多少佣金")
    assert reply.entry_id == "shop-commission"
    answer = reply.entry.answer if reply.entry else ""
    assert "2026-08-31" in answer and "到期" in answer and "百万免佣" in answer
    assert "本库没有来源" in answer  # what replaced it is not known, and it says so


def test_old_answers_carry_a_may_have_changed_note_and_admins_see_the_list(
        service: KnowledgeService) -> None:
    entries = service.current.kb.entries
    today = dt.date(2026, 11, 27)
    assert judge(entries["commission-history"], today).old  # a 2019 fact
    assert judge(entries["baiwan-mianyong"], today).expired
    assert not judge(entries["baiwan-mianyong"], dt.date(2026, 3, 1)).expired
    listed = [e.id for e, _ in needing_review(entries.values(), today)]
    assert listed[0] == "baiwan-mianyong" or "baiwan-mianyong" in listed
    assert "commission-history" in listed
    console = AdminConsole(service, SQLiteStore(":memory:"), clock=lambda: _at("2026-11-27"))
    report = console.run("stale")
    assert "baiwan-mianyong" in report and "有效期已结束（2026-08-31）" in report


def test_a_follow_up_is_read_against_the_previous_question(engine: Engine, key) -> None:
    assert engine.reply(key, "国内订单几天自动确认收货").entry_id == "auto-confirm-receipt"
    assert engine.reply(key, "那海外的呢").entry_id == "auto-confirm-receipt"
    # A new question with a subject of its own is not dragged into the old one.
    assert engine.reply(key, "薯条是什么东西").entry_id == "shutiao-what"


@pytest.mark.parametrize(("first", "then", "entry"), [
    ("红猫计划是什么", "那京东呢", "jd-cooperation"),
    ("聚光开户要什么资质", "那千帆呢", "qianfan-what"),
    ("薯条的投放目标有哪些", "那聚光呢", "juguang-what"),
])
def test_a_follow_up_that_changes_the_subject_leaves_the_old_answer(
        engine: Engine, key, first: str, then: str, entry: str) -> None:
    before = engine.reply(key, first)
    assert before.kind == "answer"
    after = engine.reply(key, then)
    assert after.entry_id == entry and after.entry_id != before.entry_id


@pytest.mark.parametrize(("first", "then", "entry"), [
    # No term of the knowledge, a case of the answer just given: it answers again.
    ("22年医美整治删了多少篇笔记", "账号呢", "yimei-crackdown-2022"),
    ("直播间最早什么时候能挂淘宝外链", "笔记呢", "external-links-history"),
])
def test_a_follow_up_naming_a_case_of_the_last_answer_stays_on_it(
        engine: Engine, key, first: str, then: str, entry: str) -> None:
    assert engine.reply(key, first).entry_id == entry
    assert engine.reply(key, then).entry_id == entry


def test_a_follow_up_naming_another_year_or_a_known_gap_leaves_the_last_answer(
        engine: Engine) -> None:
    talk = ConversationKey("t", "case", "year")
    assert engine.reply(talk, "25年医美治理封了多少号").entry_id == "yimei-crackdown-2025"
    assert engine.reply(talk, "那22年的呢").entry_id == "yimei-crackdown-2022"
    # The food-licence entry names 保健品 only to say it has nothing on them: a known gap.
    talk = ConversationKey("t", "case", "gap")
    assert engine.reply(talk, "卖零食要办什么证").entry_id == "food-licence"
    reply = engine.reply(talk, "那保健品呢")
    assert (reply.kind, reply.reason) == ("fallback", "known_gap")


def test_a_follow_up_naming_another_term_asks_the_same_of_it(engine: Engine) -> None:
    # "那聚光呢" after "薯条是什么" asks "聚光是什么", and the next one builds on that.
    talk = ConversationKey("t", "swap", "zh")
    answers = [engine.reply(talk, text).entry_id for text in ("薯条是什么", "那聚光呢", "那千帆呢")]
    assert answers == ["shutiao-what", "juguang-what", "qianfan-what"]
    talk = ConversationKey("t", "swap", "en")
    assert engine.reply(talk, "What is Shutiao?").entry_id == "shutiao-what"
    reply = engine.reply(talk, "what about Juguang?")
    assert (reply.entry_id, reply.lang) == ("juguang-what", "en")


def test_a_follow_up_about_another_platform_is_out_of_scope(engine: Engine, key) -> None:
    # The deposit concept would settle on the shop sense; the answer must still speak of 抖音.
    assert engine.reply(key, "小红书开店要保证金吗").entry_id == "shop-types-deposit"
    assert engine.reply(key, "抖音呢").reason == "other_platform"


@pytest.mark.parametrize(("question", "expected"), [
    ("笔记里能放抖音号吗", "siyu-contact-violation"),
    ("Can I mention my Instagram in my profile?", "siyu-contact-violation"),
    # original-protection names no platform, but speaks of creators from other platforms (站外)
    ("我在抖音有十万粉，能申请原创保护吗", "original-protection"),
    # a message naming 小红书 asks about ours, whatever else it names
    ("从抖音转过来的 小红书开店要保证金吗", "shop-types-deposit"),
    ("以前做快手的 想问下小红书薯条最低投多少", "shutiao-budget"),
    ("I sold on TikTok Shop before, can I open a shop on RedNote as a foreigner?",
     "shop-entry-standard"),
    ("xhs开店要交保证金吗", "shop-types-deposit"),
    # Sending people from our comments to another platform is diversion: our rule.
    ("可以在评论区让人去拼多多搜吗", "siyu-contact-violation"),
])
def test_questions_naming_another_platform_that_are_ours(engine: Engine, key, question: str,
                                                         expected: str) -> None:
    assert engine.reply(key, question).entry_id == expected


@pytest.mark.parametrize("question", ["抖音开店要保证金吗", "抖音的私信能发微信号吗",
                                      "How much does a Douyin shop deposit cost?"])
def test_another_platforms_own_rules_stay_out_of_scope(engine: Engine, key,
                                                       question: str) -> None:
    assert engine.reply(key, question).reason == "other_platform"


def test_a_follow_up_asking_for_a_figure_keeps_the_subject(engine: Engine, key) -> None:
    assert engine.reply(key, "开餐饮团购要什么条件").entry_id == "bendi-tuangou-join"
    assert engine.reply(key, "大概多久").entry_id == "bendi-tuangou-join"
    # The figure may live in a neighbouring entry on the same subject.
    assert engine.reply(key, "企业号认证需要什么材料").entry_id == "enterprise-cert-materials"
    assert engine.reply(key, "要多少钱").entry_id == "enterprise-certification-fee"


def test_a_follow_up_asking_for_a_figure_stays_near_the_subject(engine: Engine) -> None:
    # "how long does it take?" alone is a note appeal's question; asked of the certification
    # papers it must not be answered with the appeal's working days.
    talk = ConversationKey("t", "c", "aspect-en")
    assert engine.reply(talk, "what docs do i need for blue v").entry_id == (
        "enterprise-cert-materials")
    assert engine.reply(talk, "how long does it take?").entry_id != "note-appeal"


def test_a_question_about_the_terms_two_meanings_is_answered(engine: Engine, key) -> None:
    assert engine.reply(key, "为啥个体店会有两种解释").entry_id == "getidian-meanings"


def test_a_very_short_message_without_a_term_asks_more_of_the_last_answer(engine: Engine,
                                                                          key) -> None:
    assert engine.reply(key, "蓝V认证多少钱").entry_id == "enterprise-certification-fee"
    assert engine.reply(key, "每年都要交吗").entry_id == "enterprise-certification-fee"
    # One that finds its own answer is a new question, not a follow-up; checking that is a
    # probe, not a decision, so the judgement's training does not learn from it.
    engine.trace = []
    assert engine.reply(key, "封号了怎么办").entry_id == "ban-duration"
    assert [entry for entry, _ in engine.trace] == ["ban-duration"]


@pytest.mark.parametrize(("topic", "ask", "expected"), [
    ("原创保护", "入口在哪", "original-protection"),  # alone: the 市集 entrance
    ("团购", "个人号能开吗", "bendi-tuangou-join"),  # alone: a personal account's shop
    ("聚光", "个人能开吗", "juguang-what"),
])
def test_a_short_ask_after_a_bare_topic_asks_about_that_topic(engine: Engine, key, topic: str,
                                                              ask: str, expected: str) -> None:
    assert engine.reply(key, topic).kind == "answer"
    assert engine.reply(key, ask).entry_id == expected


def test_an_english_reply_to_a_clarification_picks_by_cue(engine: Engine, key) -> None:
    assert engine.reply(key, "How much is the deposit?").concept == "baozhengjin"
    reply = engine.reply(key, "for an online shop")
    assert (reply.entry_id, reply.lang) == ("shop-types-deposit", "en")


@pytest.mark.parametrize("reply", ["我是普通账号", "用身份证开的"])
def test_a_reply_naming_a_sense_by_its_cue_picks_it(engine: Engine, key, reply: str) -> None:
    assert engine.reply(key, "个体店怎么开").kind == "clarify"
    assert engine.reply(key, reply).entry_id == "getidian-personal"


def test_questions_about_the_past_go_to_the_history(engine: Engine) -> None:
    for i, question in enumerate(["小红书最早的时候能挂外链吗", "外链以前是怎么回事"]):
        reply = engine.reply(ConversationKey("t", "past", str(i)), question)
        assert reply.entry_id == "external-links-history", question
    # Without a word about the past, the bare term still asks which kind is meant.
    assert engine.reply(ConversationKey("t", "past", "now"), "外链能做吗").kind == "clarify"
    # A sense settled earlier in the conversation (红猫计划: ad links) does not hide the history.
    talk = ConversationKey("t", "past", "talk")
    assert engine.reply(talk, "红猫计划是什么").entry_id == "hongmao-what"
    assert engine.reply(talk, "外链最早是怎么回事").entry_id == "external-links-history"


def test_cues_that_tie_between_senses_answer_the_entry_both_share(engine: Engine) -> None:
    # 开店 is a cue of the shop-racing sense, 广告 of the marketing one; both list this entry.
    reply = engine.reply(ConversationKey("t", "tie", "1"),
                         "开店以后笔记越写越像广告，是不是因此没流量了")
    assert reply.entry_id == "traffic-drop-after-shop"
    # Without cues, words that lead nowhere on their own ("账号", "很多") single out no sense.
    reply = engine.reply(ConversationKey("t", "tie", "2"), "账号流量掉了很多")
    assert (reply.kind, reply.concept) == ("clarify", "xianliu")


@pytest.mark.parametrize(("question", "kind"), [
    ("个体店到底是什么", "answer"),
    ("个体店的开店步骤是什么", "clarify"),  # 是什么 asks about the steps, not the term
])
def test_a_general_cue_must_sit_by_the_term(engine: Engine, key, question: str,
                                            kind: str) -> None:
    reply = engine.reply(key, question)
    assert reply.kind == kind
    if kind == "answer":
        assert reply.entry_id == "getidian-meanings"


def test_the_term_alone_settles_no_sense(engine: Engine, key) -> None:
    # 导流 is one of 引流's own terms: it cannot also be the cue that picks a sense.
    reply = engine.reply(key, "导流该怎么搞")
    assert (reply.kind, reply.concept) == ("clarify", "yinliu")


@pytest.mark.parametrize(("question", "entry"), [
    ("My notes lost reach after I attached a product, am I shadowbanned?",
     "product-note-traffic"),
    ("笔记挂了product就没流量了", "product-note-traffic"),
    ("I got shadowbanned after adding my wechat, what now?", "violation-throttle"),
    ("想做私域，怎么引流比较安全", "siyu-compliant-route"),
])
def test_english_and_mixed_cue_words_settle_the_sense(engine: Engine, key, question: str,
                                                      entry: str) -> None:
    assert engine.reply(key, question).entry_id == entry


def test_the_other_sense_after_a_clarification(engine: Engine, key) -> None:
    assert engine.reply(key, "个体店怎么开啊").kind == "clarify"
    assert engine.reply(key, "1").entry_id == "getidian-personal"
    assert engine.reply(key, "那另一种呢").entry_id == "getidian-enterprise"


def test_the_other_sense_before_any_pick_asks_again_and_keeps_the_options(engine: Engine,
                                                                          key) -> None:
    assert engine.reply(key, "个体店怎么开啊").kind == "clarify"
    again = engine.reply(key, "那另一种呢")
    assert (again.kind, again.concept) == ("clarify", "getidian")
    assert [o.id for o in again.options][:2] == ["getidian.personal", "getidian.enterprise"]
    assert engine.reply(key, "第二种呢").entry_id == "getidian-enterprise"


def test_the_question_inside_a_long_message_is_found(engine: Engine, key) -> None:
    story = ("我们是做手工饰品的小工作室，去年在别的平台卖了一阵子，今年刚来这边，粉丝不多，"
             "朋友让我先别急着开店。我想问一下，刚注册、一个粉丝都没有的账号，能不能直接开店卖东西？")
    assert engine.reply(key, story).entry_id == "zero-fan-open-shop"


def test_english_questions_get_english_answers_and_clarifications(engine: Engine) -> None:
    answer = engine.reply(ConversationKey("t", "c", "en1"), "What is Shutiao on RedNote?")
    assert answer.entry_id == "shutiao-what" and answer.lang == "en"
    text = render(answer)
    assert answer.entry is not None and answer.entry.answer_en.split("\n")[0][:30] in text
    assert "Basis:" in text and "as of" in text
    clarify = engine.reply(ConversationKey("t", "c", "en2"), "I think I got shadowbanned")
    assert (clarify.kind, clarify.concept) == ("clarify", "xianliu")
    assert clarify.message.startswith('"Throttling"')
    assert clarify.options[-1].label == "None of these"


@pytest.mark.parametrize(("text", "lang"), [
    ("what does 个体店 mean", "en"),
    ("my 薯条 order got rejected, why??", "en"),
    ("what is 号店一体", "en"),
    ("Is 交易导流违规管理细则 still in force?", "en"),  # a long quoted name
    ("hi", "en"),
    ("小红书shop deposit多少", "zh"),  # a Chinese sentence with English words
    ("挂了product会限流吗", "zh"),
    ("个体店怎么开", "zh"),
])
def test_an_english_sentence_may_quote_a_chinese_term(text: str, lang: str) -> None:
    assert language(text) == lang


def test_a_number_not_on_offer_says_which_numbers_are(engine: Engine, key) -> None:
    assert engine.reply(key, "薯条是什么").entry_id == "shutiao-what"
    reply = engine.reply(key, "4")  # three related questions are on offer
    assert reply.kind == "clarify" and len(reply.options) == 3
    assert "1 到 3" in reply.message
    assert engine.reply(key, "2").kind == "answer"  # the offer still stands


def test_sources_are_written_in_the_readers_language(engine: Engine) -> None:
    zh = render(engine.reply(ConversationKey("t", "c", "src-zh"), "薯条是什么"))
    assert "（未注明日期）" in zh and "undated" not in zh and "｜信息截至" in zh
    en = render(engine.reply(ConversationKey("t", "c", "src-en"), "What is Shutiao?"))
    assert " (undated)" in en and "（" not in en.split("Sources")[1] and " | as of" in en


def test_a_numbered_pick_keeps_the_conversations_language(engine: Engine) -> None:
    talk = ConversationKey("t", "c", "pick-en")
    assert engine.reply(talk, "how do i open an individual shop").kind == "clarify"
    picked = engine.reply(talk, "2")
    assert (picked.entry_id, picked.lang) == ("getidian-enterprise", "en")
    related = engine.reply(talk, "1")  # a related entry offered after the answer
    assert related.kind == "answer" and related.lang == "en"
    assert engine.reply(talk, "??").lang == "en"  # no letters: the conversation's language


@pytest.mark.parametrize(("question", "concept"), [
    ("why did my traffic drop", "xianliu"),
    ("my reach dropped a lot this week, is my account limited?", "xianliu"),
    ("I want to run ads", "touliu"),
    ("I have a sole proprietor licence, can I open a shop?", "getidian"),
])
def test_ambiguous_english_asks_ask_back(engine: Engine, key, question: str,
                                         concept: str) -> None:
    reply = engine.reply(key, question)
    assert (reply.kind, reply.concept, reply.lang) == ("clarify", concept, "en")


def test_the_learned_judgement_declines_what_the_best_entry_does_not_cover(
        service: KnowledgeService, tmp_path: Path) -> None:
    model = answerability.Model.load()
    assert model is not None, "train it with `python -m bot eval --train`"
    key = ConversationKey("t", "c", "u")
    judged = Engine(service, SQLiteStore(":memory:"), Settings(data_dir=tmp_path))
    unjudged = Engine(service, SQLiteStore(":memory:"),
                      Settings(data_dir=tmp_path, learned_answerability=False))
    # No entry says how to get a banned shop's money out; the nearest is about ban durations.
    question = "号被永久封了，店铺里没提的货款怎么拿回来"
    assert unjudged.reply(key, question).entry_id == "ban-duration"
    assert judged.reply(key, question).reason == "not_covered"
    assert judged.reply(key, "薯条是投流工具吗").entry_id == "shutiao-what"
    # A long English question scores under the answer threshold on likeness alone; the
    # judgement, which sees how far ahead its entry is, answers it.
    question = ("Where did Xiaohongshu rank on the US App Store free chart on Jan 13 during "
                "the TikTok refugee wave?")
    top = service.current.index.search(question, top_k=1)[0]
    assert top.key == "tiktok-refugees" and top.score < Settings().thresholds.answer
    assert unjudged.reply(key, question).kind == "fallback"
    assert judged.reply(key, question).entry_id == "tiktok-refugees"


def test_the_judgement_sees_a_question_asking_what_its_entry_does_not_hold(
        engine: Engine, service: KnowledgeService) -> None:
    snap = service.current
    missing = answerability.FEATURES.index("aspect_missing")

    def aspect_missing(question: str, key: str) -> float:
        turn = Turn(ConversationKey("t", "a", question), question, snap, 0, "zh")
        turn.norm = snap.normalizer(question)
        hit = snap.index.search(question, {key}, top_k=1)[0]
        return float(engine.describe(turn, [hit])[missing])

    # The entry on 灵犀 says what it is and how to open it, and names no fee.
    assert answerability.aspects_asked(snap.normalizer("灵犀要收费吗")) == {"fee"}
    assert aspect_missing("灵犀要收费吗", "lingxi") == 1.0
    assert aspect_missing("灵犀在哪开通", "lingxi") == 0.0
    # A figure in the text counts: the certification entry gives the fee in yuan.
    assert aspect_missing("蓝V认证要交多少钱", "enterprise-certification-fee") == 0.0
    assert answerability.aspects_held("审核一般 1–3 天出结果") == {"duration"}
    assert answerability.aspects_held("下架违规笔记 7600 多篇") == {"count"}
    # Words that look like an ask and are not: a difference, parts, which kinds.
    assert answerability.aspects_asked("三种店铺差在哪") == frozenset()
    assert answerability.aspects_asked("新版公约一共多少条,分成了几块") == {"count"}
    assert answerability.aspects_asked("平台到底认可哪几种获客的路子") == frozenset()


def test_a_long_message_the_judgement_trusts_whole_is_not_cut_to_a_clause(
        engine: Engine, service: KnowledgeService) -> None:
    text = ("我是做家装设计的，客户全在本地，签单必须线下面谈，所以一直想办法加对方微信，"
            "之前被警告过一次。现在规则这么严，我就想知道平台到底认可哪几种获客的路子，"
            "别再让我踩雷了")
    top = service.current.index.search(text, top_k=1)[0]
    assert top.score < Settings().thresholds.answer  # under the hand threshold, yet judged
    turn = Turn(ConversationKey("t", "long", "whole"), text, service.current, 0, "zh")
    assert engine._focus(turn) == text
    assert engine.reply(ConversationKey("t", "long", "reply"), text).entry_id == top.key


def test_answerability_training_and_cross_validation_on_separable_rows() -> None:
    rng = np.random.default_rng(7)
    good = rng.normal(1.0, 0.2, size=(40, len(answerability.FEATURES)))
    bad = rng.normal(-1.0, 0.2, size=(40, len(answerability.FEATURES)))
    x = np.vstack([good, bad])
    y = np.array([1.0] * 40 + [0.0] * 40)
    model = answerability.train(x, y, [0.3, 0.5, 0.7])
    assert model.answers(good[0]) and not model.answers(bad[0])
    counts = answerability.cross_validate(x, y, 4, [0.5])
    assert sum(counts.values()) == 80 and counts["tp"] + counts["tn"] >= 76


def test_basis_official_needs_the_platforms_own_document(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/tools/shutiao-what.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("basis: 服务商或从业者经验", "basis: 官方规则"), encoding="utf-8")
    _, problems = check_knowledge(knowledge_copy)
    assert any("shutiao-what.md" in str(p) and "官方规则" in str(p) and p.severity == "error"
               for p in problems), problems
    # With a page on the platform's own host among the sources, the label is accepted.
    path.write_text(text.replace("basis: 服务商或从业者经验", "basis: 官方规则").replace(
        "sources:\n", "sources:\n  - ref: school.xiaohongshu.com/rule/123\n    date: 2025\n", 1),
        encoding="utf-8")
    _, problems = check_knowledge(knowledge_copy)
    assert not any("shutiao-what.md" in str(p) for p in problems), problems


def test_an_entry_without_english_is_an_error(knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.split("\n## English")[0] + "\n", encoding="utf-8")
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is None
    assert any("zhike-what.md" in str(p) and p.severity == "error" for p in problems), problems


@pytest.mark.parametrize("label", ["官方规则", "平台人员说法", "媒体报道", "服务商或从业者经验",
                                   "第三方网页（未核实）"])
def test_every_basis_label_is_used_or_allowed(service: KnowledgeService, label: str) -> None:
    from bot.kb.loader import BASIS_LABELS

    assert label in BASIS_LABELS.values()
    used = {e.basis_label for e in service.current.kb.entries.values()}
    assert "官方规则" not in used  # no platform document is among the sources yet
    assert used <= set(BASIS_LABELS.values())


def test_kb_check_lists_expired_and_old_entries(run_cli) -> None:
    result = run_cli("kb", "check", "--confusable", "0")
    assert result.returncode == 0, result.stderr
    assert "baiwan-mianyong: 有效期已结束（2026-08-31）" in result.stdout
    assert "commission-history: 信息截至 2019，已超过一年" in result.stdout


def test_a_date_that_is_no_calendar_day_is_a_problem_not_a_crash_later(
        knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/shop/baiwan-mianyong.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("valid_until: 2026-08-31", "valid_until: 2026-02-30"),
                    encoding="utf-8")
    kb, problems = check_knowledge(knowledge_copy)
    assert kb is None
    assert any("baiwan-mianyong.md" in str(p) and "2026-02-30" in str(p) for p in problems)


@pytest.mark.parametrize(("question", "entry"), [
    ("How much is the deposit for an online shop?", "shop-types-deposit"),
    ("What is a traffic product?", "yinliukuan-what"),
    ("I deposited money into Juguang, can I get it back?", "juguang-balance-refund"),
    # questions about a term itself, some quoting the Chinese term
    ("what does 个体店 mean", "getidian-meanings"),
    ("what is an individual shop", "getidian-meanings"),
    ("what does throttling mean on rednote", "xianliu-definition"),
])
def test_english_platform_terms_are_understood(engine: Engine, key, question: str,
                                               entry: str) -> None:
    reply = engine.reply(key, question)
    assert (reply.entry_id, reply.lang) == (entry, "en")


# ---------------------------------------------------------------- known gaps


def test_a_question_the_knowledge_lists_as_a_gap_is_said_so_not_answered_from_a_neighbour(
        engine: Engine) -> None:
    question = "珠宝类目开店保证金是不是比别的类目高"
    reply = engine.reply(ConversationKey("t", "c", "gap-zh"), question)
    gap = engine.service.current.kb.gaps["category-deposit"]
    assert (reply.kind, reply.reason, reply.entry) == ("fallback", "known_gap", None)
    assert gap.topic in reply.message and gap.note in reply.message
    assert gap.checked in reply.message
    # The entries on the nearby questions are offered, the gap's own pointers first.
    deposit = engine.service.current.kb.entries["shop-types-deposit"]
    assert reply.options[0].id == "shop-types-deposit"
    text = render(reply)
    assert deposit.title in text and "帮助与客服" in text
    # Like any question the bot cannot answer, it reaches the maintainers' inbox.
    assert engine.store.latest_unanswered(1)[0].text == question
    # The nearby question the knowledge does answer is still answered.
    assert engine.reply(ConversationKey("t", "c", "gap-near"),
                        "开店保证金要交多少").entry_id == "shop-types-deposit"
    # Its suggestions stay pickable by number.
    picked = engine.reply(ConversationKey("t", "c", "gap-zh"), "1")
    assert picked.entry_id == "shop-types-deposit"


def test_a_known_gap_is_said_in_english_to_an_english_speaker(engine: Engine) -> None:
    reply = engine.reply(ConversationKey("t", "c", "gap-en"),
                         "Do I need to pay tax on what I sell on RedNote?")
    gap = engine.service.current.kb.gaps["tax-and-invoices"]
    assert (reply.kind, reply.reason, reply.lang) == ("fallback", "known_gap", "en")
    assert gap.topic_en in reply.message and gap.note_en in reply.message
    assert gap.topic not in reply.message and "known gap" in render(reply)


@pytest.mark.parametrize(("question", "gap"), [
    ("直播卖货需要多少粉丝才能开播", "live-streaming-entry"),
    ("买家七天无理由退货我能拒绝吗", "seven-day-returns"),
    ("聚光投放一次点击大概花多少钱", "juguang-bid-prices"),
    ("卖保健食品在小红书要什么资质", "category-licences"),
])
def test_questions_about_known_gaps_in_other_words(engine: Engine, question: str,
                                                   gap: str) -> None:
    reply = engine.reply(ConversationKey("t", "c", question), question)
    assert (reply.kind, reply.reason) == ("fallback", "known_gap")
    assert engine.service.current.kb.gaps[gap].topic in reply.message


def test_a_known_gap_removed_by_a_reload_stops_catching_its_questions(
        own_service: KnowledgeService, tmp_path: Path) -> None:
    question = "珠宝类目开店保证金是不是比别的类目高"
    engine = Engine(own_service, SQLiteStore(tmp_path / "gaps.sqlite"),
                    Settings(data_dir=tmp_path))
    assert engine.reply(ConversationKey("t", "c", "1"), question).reason == "known_gap"
    path = own_service.knowledge_dir / "gaps.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("- id: category-deposit"), text.index("# 资料整理记录问题 11")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    report = own_service.reload()
    assert report.removed == ["category-deposit"]
    # Without the gap the nearest entry, on deposits by shop type, is what the bot has.
    after = engine.reply(ConversationKey("t", "c", "2"), question)
    assert after.entry_id == "shop-types-deposit"  # which names no category at all
    path.write_text(text, encoding="utf-8")
    assert own_service.reload().added == ["category-deposit"]
    assert engine.reply(ConversationKey("t", "c", "3"), question).reason == "known_gap"


@pytest.mark.parametrize("question", ["个人店、个体工商店和企业店这三种店铺分别有什么不同",
                                      "个人店，个体工商店，企业店，三种店铺差在哪"])
def test_a_cue_does_not_pull_a_question_about_something_else_into_a_sense(
        engine: Engine, question: str) -> None:
    # 个人店 is a cue of the personal 个体店 sense, but the question compares shop types: the
    # shop-types entry leads that sense's entry by far, so the term is named only in passing.
    reply = engine.reply(ConversationKey("t", "c", question), question)
    assert reply.entry_id == "shop-types-deposit"


def test_a_settled_sense_still_answers_its_own_questions(engine: Engine) -> None:
    reply = engine.reply(ConversationKey("t", "c", "sense"),
                         "普通个人号用个体户执照开的个体店，要准备哪些材料")
    assert reply.entry_id == "getidian-personal"


@pytest.mark.parametrize(("question", "expected"), [
    ("22年那次医美专项治理一共处理了多少条笔记", "yimei-crackdown-2022"),
    ("2025年初医美治理处理了多少账号", "yimei-crackdown-2025"),
    ("21年小红书搞的那几轮社区整治都管了啥", "cleanup-2021"),
])
def test_a_year_named_in_the_question_picks_that_years_entry(engine: Engine, question: str,
                                                              expected: str) -> None:
    assert engine.reply(ConversationKey("t", "c", question), question).entry_id == expected


def test_a_plain_text_answer_names_the_question_it_answers(engine: Engine) -> None:
    # WeCom and the command line get plain text: the entry's question heads the answer, so a
    # seller sees at once when the nearest entry answers a question other than theirs.
    zh = engine.reply(ConversationKey("t", "c", "title-zh"), "薯条到底算不算投流工具")
    assert zh.entry is not None and render(zh).startswith(f"【{zh.entry.title}】\n\n")
    en = engine.reply(ConversationKey("t", "c", "title-en"), "Is Shutiao an ad tool?")
    assert en.entry is not None and render(en).startswith(f"{en.entry.title_en}\n\n")


@pytest.mark.parametrize(("question", "expected"), [
    ("平台嘴里说的限流到底指啥", "xianliu-definition"),
    ("个体店是啥", "getidian-meanings"),
])
def test_colloquial_what_is_questions_ask_about_the_term_itself(engine: Engine, question: str,
                                                                expected: str) -> None:
    assert engine.reply(ConversationKey("t", "c", question), question).entry_id == expected


@pytest.mark.parametrize(("turns", "expected"), [
    (("原创保护要多少粉丝才能申请", "具体在APP哪里申请"), "original-protection"),
    (("百万免佣计划是什么", "这个需要自己去后台报名吗"), "baiwan-mianyong"),
])
def test_a_question_that_finds_nothing_alone_is_read_as_more_about_the_last_answer(
        engine: Engine, turns: tuple[str, str], expected: str) -> None:
    key = ConversationKey("t", "c", turns[1])
    engine.reply(key, turns[0])
    assert engine.reply(key, turns[1]).entry_id == expected


def test_a_question_that_points_back_asks_about_the_last_answer(engine: Engine) -> None:
    # "这笔钱" is the deposit just answered, though "能退吗" alone matches 聚光's refunds best;
    # "这个平台" points at the platform, not at the answer: it is a question of its own.
    key = ConversationKey("t", "c", "points-back")
    engine.reply(key, "开店保证金要交多少")
    assert engine.reply(key, "这笔钱以后不开店了能退吗").entry_id == "shop-types-deposit"
    engine.reply(key, "开店保证金要交多少")
    assert engine.reply(key, "这个平台能卖二手吗").reason == "known_gap"


@pytest.mark.parametrize("message", ["红烧肉怎么做", "周末去哪玩"])
def test_a_short_message_unrelated_to_the_last_answer_is_not_dragged_into_it(
        engine: Engine, message: str) -> None:
    key = ConversationKey("t", "c", message)
    assert engine.reply(key, "开店保证金要交多少").entry_id == "shop-types-deposit"
    assert engine.reply(key, message).kind == "fallback"
