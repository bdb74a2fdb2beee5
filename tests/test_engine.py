"""The dialogue engine over the real knowledge and the real encoder."""

from pathlib import Path

import pytest

from bot.channels.render import render
from bot.dialogue.engine import ConversationKey, Engine, pick_option
from bot.dialogue.replies import NONE_OF_THESE, Option
from bot.kb.service import KnowledgeService
from bot.settings import Settings, Thresholds
from bot.store.sqlite import SQLiteStore


def test_ambiguous_term_asks_back_with_both_senses_and_none(engine: Engine, key) -> None:
    reply = engine.reply(key, "个体店怎么开")
    assert reply.kind == "clarify"
    assert [o.id for o in reply.options] == ["getidian.personal", "getidian.enterprise",
                                             NONE_OF_THESE]
    text = render(reply)
    assert "个人账号" in text and "企业专业号" in text and "都不是" in text


@pytest.mark.parametrize(("pick", "entry"), [
    ("2", "getidian-enterprise"),
    ("第1个", "getidian-personal"),
    ("getidian.enterprise", "getidian-enterprise"),
    ("个人账号（非专业号）绑定个体户营业执照开的店", "getidian-personal"),
    ("二", "getidian-enterprise"),
])
def test_pick_by_number_id_or_label(engine: Engine, key, pick: str, entry: str) -> None:
    assert engine.reply(key, "个体店怎么开").kind == "clarify"
    reply = engine.reply(key, pick)
    assert (reply.kind, reply.entry_id) == ("answer", entry)


def test_a_picked_sense_answers_with_its_central_entry(engine: Engine, key) -> None:
    # "我被限流了" says nothing but the term: the sense's label supplies the subject, so the
    # product-note sense answers with the product-note entry, not the one on adding later.
    assert engine.reply(key, "我被限流了").kind == "clarify"
    assert engine.reply(key, "1").entry_id == "product-note-traffic"


def test_cue_words_settle_the_sense_without_asking(engine: Engine, key) -> None:
    reply = engine.reply(key, "个体户执照能认证企业专业号开个体店吗")
    assert (reply.kind, reply.entry_id) == ("answer", "getidian-enterprise")


def test_cue_words_earlier_in_the_conversation_count(engine: Engine, key) -> None:
    engine.reply(key, "我用的是个人账号")
    reply = engine.reply(key, "个体店怎么开")
    assert (reply.kind, reply.entry_id) == ("answer", "getidian-personal")


def test_question_about_the_term_itself_is_answered(engine: Engine, key) -> None:
    reply = engine.reply(key, "个体店是什么意思")
    assert (reply.kind, reply.entry_id) == ("answer", "getidian-meanings")


def test_vague_xianliu_and_touliu_ask_back(engine: Engine, key) -> None:
    assert engine.reply(key, "我被限流了").kind == "clarify"
    assert engine.reply(key, "怎么投流").kind == "clarify"


def _write_entry(root: Path, entry_id: str, title: str, questions: list[str]) -> None:
    lines = "".join(f"  - {q}\n" for q in questions)
    (root / "entries" / f"{entry_id}.md").write_text(
        f"---\nid: {entry_id}\ntitle: {title}\nquestions:\n{lines}topic: 测试\n"
        f"basis: 从业者经验\ntitle_en: {entry_id}\nquestions_en: [{entry_id} one, {entry_id} two]\n"
        "sources:\n  - ref: test\n    date: 2025\nas_of: 2025\n---\n"
        f"{title}的答案。\n\n## English\nThe answer.\n", encoding="utf-8")


def test_close_candidates_are_offered_as_a_choice(encoder, tmp_path: Path, clock) -> None:
    root = tmp_path / "kb"
    (root / "entries").mkdir(parents=True)
    _write_entry(root, "refund-how", "薯条订单怎么退款？", ["薯条怎么退款", "薯条退款流程",
                                                          "投薯条的钱怎么退", "薯条能退吗"])
    _write_entry(root, "refund-when", "薯条退款多久到账？", ["薯条退款几天到账",
                                                            "薯条退款什么时候到", "薯条退钱慢",
                                                            "薯条退款要等多久"])
    _write_entry(root, "zhike", "直客是什么？", ["直客是干嘛的", "直客是官方的吗", "直客KPI",
                                                 "直客的考核"])
    service = KnowledgeService(root, tmp_path / "var", encoder)
    service.start()
    settings = Settings(thresholds=Thresholds(margin=0.08))
    engine = Engine(service, SQLiteStore(tmp_path / "s.sqlite"), settings, clock=clock)
    key = ConversationKey("test", "c", "u")
    hits = service.current.index.search("薯条退款")
    assert hits[0].score - hits[1].score < settings.thresholds.margin, hits[:2]
    reply = engine.reply(key, "薯条退款")
    assert reply.kind == "clarify"
    assert [o.id for o in reply.options] in (["refund-how", "refund-when", NONE_OF_THESE],
                                             ["refund-when", "refund-how", NONE_OF_THESE])
    assert engine.reply(key, "refund-when").entry_id == "refund-when"
    # A clear question about one of them is answered directly.
    assert engine.reply(key, "直客是干嘛的").entry_id == "zhike"


def test_none_of_these_falls_back_and_logs(engine: Engine, key) -> None:
    engine.reply(key, "个体店怎么开")
    reply = engine.reply(key, "都不是")
    assert reply.kind == "fallback" and reply.reason == "none_of_these"
    logged = engine.store.latest_unanswered(5)
    assert [u.text for u in logged] == ["个体店怎么开"]


def test_unrelated_question_falls_back_and_is_logged(engine: Engine, key) -> None:
    reply = engine.reply(key, "红烧肉怎么做才好吃")
    assert reply.kind == "fallback" and reply.reason == "not_covered"
    assert "帮助与客服" in render(reply)
    assert engine.store.latest_unanswered(1)[0].text == "红烧肉怎么做才好吃"


def test_pending_question_expires(engine: Engine, key, clock) -> None:
    engine.reply(key, "个体店怎么开")
    clock.now += engine.settings.pending_ttl + 1
    reply = engine.reply(key, "2")  # no longer a pick, and no question to look up
    assert (reply.kind, reply.reason) == ("fallback", "stale_pick")
    assert "过期" in reply.message and engine.store.latest_unanswered(5) == []


def test_new_question_replaces_the_pending_one(engine: Engine, key) -> None:
    engine.reply(key, "个体店怎么开")
    assert engine.reply(key, "直客是什么").entry_id == "zhike-what"
    reply = engine.reply(key, "2")  # now picks among zhike-what's related questions
    assert reply.entry_id != "getidian-enterprise"


def test_conversations_do_not_share_pending_questions(engine: Engine) -> None:
    alice = ConversationKey("test", "group", "alice")
    bob = ConversationKey("test", "group", "bob")
    assert engine.reply(alice, "个体店怎么开").kind == "clarify"
    assert engine.reply(bob, "2").kind == "fallback"
    assert engine.reply(alice, "2").entry_id == "getidian-enterprise"


def test_answer_carries_basis_date_sources_and_related(engine: Engine, key) -> None:
    reply = engine.reply(key, "薯条能投什么目标")
    assert reply.entry_id == "shutiao-goals"
    text = render(reply)
    assert "聚光" in text and "千帆" in text and "内容加热" in render(engine.reply(key, "1"))
    assert f"依据：{reply.entry.basis_label}" in text and "信息截至 2025" in text
    assert "cqxiaohongshu.com" in text
    assert 1 <= len(reply.options) <= 3


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("薯" * 10_000, "too_long"),
    ("😀😀😀🙏", "no_text"),
    ("？？！！。。…", "no_text"),
    ("\x00\x01\x02\x07\u200b", "empty"),
])
def test_bad_input_gets_a_sensible_reply(engine: Engine, key, text: str, reason: str) -> None:
    reply = engine.reply(key, text)
    assert reply.kind == "fallback" and reply.reason == reason
    assert render(reply)


def test_english_message_gets_an_english_frame(engine: Engine, key) -> None:
    reply = engine.reply(key, "what is the weather like in Paris")
    assert (reply.kind, reply.reason) == ("fallback", "chitchat")
    assert render(reply).startswith("I can't help with that")
    assert engine.store.latest_unanswered(5) == []  # chit-chat is no gap in the knowledge
    reply = engine.reply(key, "how do I bake sourdough bread at home")
    assert (reply.kind, reply.reason) == ("fallback", "not_covered")
    assert render(reply).startswith("Sorry")


def test_pick_option_rules() -> None:
    options = [Option("a", "薯条加热"), Option("b", "聚光广告"), Option(NONE_OF_THESE, "都不是")]
    same = str
    assert pick_option(options, "２", same).id == "b"
    assert pick_option(options, "选1", same).id == "a"
    assert pick_option(options, "聚光广告。", same).id == "b"
    assert pick_option(options, "以上都不是", same).id == NONE_OF_THESE
    assert pick_option(options, "7", same) is None
    assert pick_option(options, "聚光广告怎么投", same) is None


def test_store_round_trip(tmp_path: Path) -> None:
    from bot.store.base import Conversation, Pending, Unanswered

    store = SQLiteStore(tmp_path / "s.sqlite")
    conv = Conversation(Pending("concept", "个体店", [Option("x", "y")], "getidian", 5.0),
                        ["个体店"])
    store.save_conversation("k", conv, expires=100.0)
    assert store.load_conversation("k", now=50.0) == conv
    assert store.load_conversation("k", now=100.0) == Conversation()
    store.log_unanswered(Unanswered(1.0, "cli", "c", "u", "问题一"))
    store.log_unanswered(Unanswered(2.0, "cli", "c", "u", "问题二"))
    assert [u.text for u in store.latest_unanswered(1)] == ["问题二"]
    store.log_reply(3.0, "cli", "answer", "zhike-what", 0.9)
    store.log_reply(4.0, "cli", "fallback", None, 0.1)
    assert store.reply_counts(since=3.5) == {"fallback": 1}
    store.record_feedback(5.0, "cli", "u", "zhike-what", True)
    store.close()


def test_concurrent_messages_of_one_conversation_take_turns(engine: Engine, key) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine.reply(key, "个体店怎么开")
    others = [ConversationKey("test", "group", f"u{i}") for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        picks = pool.submit(engine.reply, key, "2")
        noise = list(pool.map(lambda k: engine.reply(k, "薯条能带货吗"), others))
    assert picks.result().entry_id == "getidian-enterprise"
    assert all(r.entry_id == "shutiao-no-buyers" for r in noise)


def test_other_platforms_are_out_of_scope_unless_an_entry_covers_them(engine: Engine,
                                                                      key) -> None:
    douyin = engine.reply(key, "抖音小店保证金多少")
    assert (douyin.kind, douyin.reason) == ("fallback", "other_platform")
    assert "抖音" in douyin.message and engine.store.latest_unanswered(5) == []
    # The same platform inside our knowledge is answered: the entry speaks of it.
    assert engine.reply(key, "小红书跟京东合作了吗").entry_id == "jd-cooperation"
    assert engine.reply(key, "小红书电商和抖音比差多少").entry_id == "gmv-comparison"


def test_requests_to_write_copy_are_declined(engine: Engine, key) -> None:
    reply = engine.reply(key, "帮我写一篇护肤品种草笔记")
    assert (reply.kind, reply.reason) == ("fallback", "declined")
    english = engine.reply(key, "translate this for me please? 帮我翻译")
    assert english.reason == "declined"
    caption = engine.reply(key, "Can you write me a caption for my skincare post?")
    assert (caption.reason, caption.lang) == ("declined", "en")
    # "write" in a rule question is no request to write
    assert engine.reply(key, "can I write my wechat id in my bio").entry_id == (
        "siyu-contact-violation")


def test_negated_cue_words_do_not_settle_a_sense(engine: Engine, key) -> None:
    # "不违规" asks for the compliant way; it must not count as the cue "违规".
    reply = engine.reply(key, "引流怎么做才不违规")
    assert reply.entry_id == "siyu-compliant-route"


def test_concept_clarification_names_its_concept(engine: Engine, key) -> None:
    reply = engine.reply(key, "外链要什么条件")
    assert (reply.kind, reply.concept) == ("clarify", "wailian")
    assert engine.reply(key, "1").entry_id in {"external-links-now", "hongmao-what",
                                               "jd-cooperation"}


def test_one_sense_far_ahead_of_the_others_is_answered_without_asking(engine: Engine,
                                                                     key) -> None:
    # 引流 is ambiguous, but only forbidden-diversion entries match these questions well
    # (导流 itself is a cue for that sense).
    assert engine.reply(key, "导流新规是几号开始执行的").entry_id == "trade-diversion-rules"
    assert engine.reply(key, "引流新规是几号开始执行的").entry_id == "trade-diversion-rules"
    # A fresh conversation (this one's history already settled the sense).
    assert engine.reply(ConversationKey("test", "c", "fresh"), "引流怎么弄").kind == "clarify"


@pytest.mark.parametrize("pick", ["1", "第一个", "第1个"])
def test_topics_offered_after_none_of_these_take_their_numbers(engine: Engine, key,
                                                               pick: str) -> None:
    engine.reply(key, "个体店怎么开")
    offered = engine.reply(key, "都不是")
    assert offered.reason == "none_of_these" and offered.options
    assert "回复序号查看" in render(offered)
    # The number picks the first topic on offer: not a new question, not "第一" the word.
    assert engine.reply(key, pick).entry_id == offered.options[0].id


def test_topics_offered_by_a_fallback_take_their_numbers(engine: Engine, key) -> None:
    offered = engine.reply(key, "红烧肉怎么做才好吃")
    assert offered.reason == "not_covered" and len(offered.options) >= 2
    assert engine.reply(key, "第二个").entry_id == offered.options[1].id


@pytest.mark.parametrize("text", ["1", "第二个", "都不是"])
def test_a_number_with_nothing_on_offer_is_no_question(engine: Engine, key, text: str) -> None:
    reply = engine.reply(key, text)
    assert (reply.kind, reply.reason) == ("fallback", "stale_pick")
    assert "这个问题已经过期了" in render(reply)
    assert engine.store.latest_unanswered(5) == []


def test_topics_offered_after_rejecting_every_sense_are_other_entries(engine: Engine,
                                                                      key) -> None:
    assert engine.reply(key, "个体店怎么开").kind == "clarify"
    reply = engine.reply(key, "都不是")
    assert reply.reason == "none_of_these"
    assert not {o.id for o in reply.options} & {"getidian-personal", "getidian-enterprise"}


@pytest.mark.parametrize("text", ["你好", "在吗", "你好！", "hello", "hi", "Hi there",
                                  "good morning"])
def test_greetings_get_the_intro_and_are_not_logged(engine: Engine, key, text: str) -> None:
    reply = engine.reply(key, text)
    assert (reply.kind, reply.reason) == ("fallback", "greeting")
    intro = "Hello!" if text.isascii() else "你好！我是小红书政策问答机器人"
    assert render(reply).startswith(intro)
    assert engine.store.latest_unanswered(5) == []


@pytest.mark.parametrize("text", ["谢谢", "好的，谢谢！", "好的 谢谢", "谢啦", "Thanks!",
                                  "ok thanks", "Thanks a lot", "got it, thanks"])
def test_thanks_get_a_welcome_and_are_not_logged(engine: Engine, key, text: str) -> None:
    assert engine.reply(key, "薯条是什么").entry_id == "shutiao-what"
    reply = engine.reply(key, text)
    assert (reply.kind, reply.reason) == ("fallback", "welcome")
    assert render(reply).startswith("You're welcome" if text.isascii() else "不客气")
    assert engine.store.latest_unanswered(5) == []


def test_chitchat_is_out_of_scope_and_not_logged(engine: Engine, key) -> None:
    reply = engine.reply(key, "今天天气怎么样")
    assert (reply.kind, reply.reason) == ("fallback", "chitchat")
    assert render(reply).startswith("这个我回答不了")
    assert engine.store.latest_unanswered(5) == []
