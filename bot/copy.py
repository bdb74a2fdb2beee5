"""Every user-facing string, per language: Chinese first, English where the user writes English.

Code asks for a string by key (`say(lang, key, **values)`); nothing user-facing is written
anywhere else, so a wording change or a new language touches this file alone.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("zh", "en")

_COPY: Final[dict[str, dict[str, str]]] = {
    "zh": {
        # The dialogue's own replies
        "which_one": "你问的是下面哪一个？",
        "not_covered": "抱歉，知识库里还没有能可靠回答这个问题的内容，我不想猜。这个问题已记录，"
                       "维护者会补充。",
        "none_of_these": "好的，那我暂时回答不了，这个问题已记录，维护者会补充。",
        "declined": "我只回答小红书平台规则和政策方面的问题，不代写文案、标题，也不做翻译。",
        "other_platform": "我只回答小红书的平台规则和政策问题，{platforms}的规则不在我的知识"
                          "范围内，请以该平台的官方说明为准。",
        "empty": "请直接发送你的问题，例如：{examples}",
        "no_text": "没有看到文字内容。请用文字描述你的问题，例如：{examples}",
        "too_long": "你的消息有 {chars} 字，超过了 {limit} 字的上限。请用一两句话说清你想问的"
                    "问题，例如：{examples}",
        "greeting": "你好！我是小红书政策问答机器人，直接把你的问题发给我就行，例如：{examples}",
        "chitchat": "这个我回答不了：我只回答小红书卖家和博主的平台规则问题，例如：{examples}",
        "rate_limited": "你提问太快了，请稍等一分钟再问。",
        "empty_ask": "请在命令后面写上你的问题，例如：/ask 个体店怎么开",
        "examples_separator": "；",
        # The frame around an answer
        "basis": "依据", "as_of": "信息截至", "sources": "来源",
        "related": "相关问题（回复序号查看）：", "nearest": "你可能想问（回复序号查看）：",
        "pick": "（回复序号或选项文字即可）",
        "help": "官方帮助：普通用户可在小红书 App「我」→「设置」→「帮助与客服」咨询；"
                "商家可在商家后台联系商家客服。",
        "note": "",
        "expired": "注意：来源说明的有效期（{valid_from}至{valid_until}）已经结束，现在的做法可能"
                   "不同，请以官方最新规则为准。",
        "not_yet": "注意：来源说明这条规定从 {valid_from} 起生效。",
        "may_have_changed": "提示：这条信息截至 {as_of}，已超过一年，平台规则可能已经调整。",
        # Help and onboarding
        "intro": "我根据整理过的知识库回答小红书卖家和博主的平台规则问题，每个回答都注明依据、"
                 "来源和信息截至时间；问题有歧义时会先反问，不知道时会直说。",
        "topics": "我了解的主题：{topics}",
        "try_asking": "可以这样问：",
        "how_to_ask": "私聊直接发问题即可。群里请用 /ask 问题，或 @我，或回复我的消息。",
        "loading": "正在加载知识库（第一次运行要建索引，约 10–30 秒）……",
        "console_how_to": "在这里直接输入问题，回车发送；/help 看说明，/reload 重新加载知识库，"
                          "Ctrl-D 退出。",
        "console_unknown_command": "控制台支持的命令：/help、/reload。管理统计请在 Telegram 或企业"
                                   "微信里用管理员账号发送。",
        # Admin commands
        "admin_only": "这个命令仅限管理员使用。",
        "admin_private_only": "管理命令请在和机器人的私聊中使用。",
        "reload_failed": "知识库文件有错误，没有重新加载，仍在使用之前的版本：\n{problems}",
        "reload_more": "……还有 {more} 处",
        "reloaded": "已重新加载知识库：共 {entries} 条，用时 {seconds:.2f} 秒。",
        "reload_added": "新增", "reload_changed": "修改", "reload_removed": "删除",
        "reload_count": "{label} {count} 条",
        "stats_usage": "用法：/stats [开始日期，如 2026-11-01]（默认最近 7 天）",
        "stats_since": "自 {day} 起：",
        "kind_answer": "回答", "kind_clarify": "反问澄清", "kind_fallback": "无法回答",
        "stats_feedback": "反馈：👍 {up}　👎 {down}",
        "stats_top_unanswered": "最常见的未回答问题：",
        "unanswered_usage": "用法：/unanswered [条数，默认 10]",
        "unanswered_none": "还没有未回答的问题。",
        "unanswered_latest": "最近 {count} 个未回答的问题：",
        "stale_none": "没有过期或可能过时的条目。",
        "stale_header": "需要复核的条目（{count} 条）：",
        "stale_expired": "有效期已结束（{valid_until}）",
        "stale_old": "信息截至 {as_of}，已超过一年",
        # Channel buttons and notices
        "not_yours": "这是别人提的问题，只有提问的人可以选择。",
        "question_expired": "这个问题已经过期了，请重新提问。",
        "thanks": "谢谢反馈！",
        "useful": "👍 有用", "not_useful": "👎 没用",
        "thinking": "正在查找答案，请稍候……",
        "menu_ask": "提问：/ask 你的问题", "menu_help": "能问什么、怎么问",
        "menu_start": "开始使用",
        "menu_reload": "重新加载知识库", "menu_stats": "统计：/stats 2026-11-01",
        "menu_unanswered": "最近没能回答的问题", "menu_stale": "过期或可能过时的条目",
    },
    "en": {
        "which_one": "Which of these do you mean?",
        "not_covered": "Sorry, the knowledge base has nothing I can answer this from reliably, "
                       "and I won't guess. The question has been logged for the maintainers.",
        "none_of_these": "All right, I can't answer that yet; the question has been logged.",
        "declined": "I only answer questions about Xiaohongshu's platform rules and policies; "
                    "I don't write copy, titles or translations.",
        "other_platform": "I only answer questions about Xiaohongshu's platform rules; "
                          "{platforms} is outside what I know. Please check that platform's "
                          "official help.",
        "empty": "Please send your question, for example: {examples}",
        "no_text": "I see no words in that message. Please type your question, for example: "
                   "{examples}",
        "too_long": "Your message has {chars} characters, more than the {limit} I accept. "
                    "Please ask in a sentence or two, for example: {examples}",
        "greeting": "Hello! I answer questions about Xiaohongshu (RedNote) platform rules for "
                    "sellers and creators. Just send your question, for example: {examples}",
        "chitchat": "I can't help with that: I only answer questions about Xiaohongshu's "
                    "platform rules, for example: {examples}",
        "rate_limited": "You're asking very fast; please wait a minute before the next question.",
        "empty_ask": "Please write your question after the command, e.g. /ask how do I open a "
                     "shop",
        "examples_separator": "; ",
        "basis": "Basis", "as_of": "as of", "sources": "Sources",
        "related": "Related questions (reply with a number):",
        "nearest": "Maybe you meant (reply with a number):",
        "pick": "(Reply with the number or the option text.)",
        "help": "Official help: in the Xiaohongshu app, Me → Settings → Help & Support; "
                "merchants can contact merchant support in the seller back office.",
        "note": "(This entry has no English version yet; here is the Chinese text.)",
        "expired": "Note: the period the source gives for this ({valid_from} to {valid_until}) "
                   "has ended; what applies now may differ. Check the platform's current rules.",
        "not_yet": "Note: according to the source this applies from {valid_from}.",
        "may_have_changed": "Note: this information is as of {as_of}, more than a year ago; the "
                            "platform's rules may have changed since.",
        "intro": "I answer Xiaohongshu sellers' and creators' questions about platform rules "
                 "from a curated knowledge base. Every answer names its basis, sources and how "
                 "current it is; I ask back when a question is ambiguous and say so when I "
                 "don't know.",
        "topics": "Topics I know: {topics}",
        "try_asking": "Try asking:",
        "how_to_ask": "In a private chat just send your question. In a group use /ask "
                      "question, @mention me, or reply to my message.",
        "console_how_to": "Type a question and press Enter; /help for help, /reload to reload "
                          "the knowledge, Ctrl-D to quit.",
        "console_unknown_command": "Console commands: /help, /reload. Statistics are for "
                                   "admins on Telegram or WeCom.",
        "admin_only": "This command is for admins only.",
        "admin_private_only": "Please use admin commands in a private chat with the bot.",
        "thanks": "Thanks for the feedback!",
        "not_yours": "This is someone else's question; only the asker can choose.",
        "question_expired": "This question has expired; please ask again.",
        "thinking": "Looking for the answer…",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    """Return the string for key in lang (Chinese where English has none), filled in."""
    table = _COPY.get(lang, _COPY["zh"])
    template = table.get(key, _COPY["zh"][key])
    return template.format(**values) if values else template


def frame(lang: str) -> dict[str, str]:
    """Return the labels templates put around an answer, in lang."""
    keys = ("basis", "as_of", "sources", "related", "nearest", "pick", "help", "note")
    return {key: say(lang, key) for key in keys}
