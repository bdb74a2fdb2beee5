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
        "none_label": "都不是",
        "not_covered": "抱歉，知识库里还没有能可靠回答这个问题的内容，我不想猜。这个问题已记录，"
                       "维护者会补充。",
        "none_of_these": "好的，那我暂时回答不了，这个问题已记录，维护者会补充。",
        "known_gap": "这个问题知识库还答不了：{topic}。{note}（这是已知的空白，{checked} 核对过；"
                     "问题已记录，维护者找到可靠来源后会补充。）",
        "declined": "我只回答小红书平台规则和政策方面的问题，不代写文案、标题，也不做翻译。",
        "other_platform": "我只回答小红书的平台规则和政策问题，{platforms}的规则不在我的知识"
                          "范围内，请以该平台的官方说明为准。",
        "empty": "请直接发送你的问题，例如：{examples}",
        "no_text": "没有看到文字内容。请用文字描述你的问题，例如：{examples}",
        "too_long": "你的消息有 {chars} 字，超过了 {limit} 字的上限。请用一两句话说清你想问的"
                    "问题，例如：{examples}",
        "greeting": "你好！我是小红书政策问答机器人，直接把你的问题发给我就行，例如：{examples}",
        "chitchat": "这个我回答不了：我只回答小红书卖家和博主的平台规则问题，例如：{examples}",
        "welcome": "不客气！还有别的问题，直接发给我就行。",
        "rate_limited": "你提问太快了，请稍等一分钟再问。",
        "empty_ask": "请在命令后面写上你的问题，例如：/ask 个体店怎么开",
        "examples_separator": "；",
        "list_separator": "、",
        # The frame around an answer
        "basis": "依据", "as_of": "信息截至", "sources": "来源", "colon": "：",
        "bar": "｜", "paren_open": "（", "paren_close": "）", "source_separator": "；",
        "undated": "未注明日期",
        # The question an answer answers, above it in plain text (HTML sets it in bold), so a
        # reader sees at once whether it is the question they asked.
        "title_open": "【", "title_close": "】",
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
        "loading": "正在加载知识库（第一次运行要先建索引，会显示进度）……",
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
        "pick_in_range": "请回复 1 到 {count} 之间的数字，选下面的一项：",
        "thanks": "谢谢反馈！",
        "useful": "👍 有用", "not_useful": "👎 没用",
        "thinking": "正在查找答案，请稍候……",
        "menu_ask": "提问：/ask 你的问题", "menu_help": "能问什么、怎么问",
        "menu_start": "开始使用",
        "menu_reload": "重新加载知识库", "menu_stats": "统计：/stats 2026-11-01",
        "menu_unanswered": "最近没能回答的问题", "menu_stale": "过期或可能过时的条目",
        # Console and command line (maintainers and operators)
        "index_progress": "正在建索引：{done}/{total}",
        "index_ready": "索引已就绪：{entries}，新嵌入 {embedded} 条文字，用时 {seconds:.2f} 秒"
                       "（{encoder}）",
        "index_not_built": "没有建索引：请先改正上面的错误（之前的版本继续服务）",
        "kb_no_build": "知识库文件有错误，也没有以前建好的版本可用：请先改正上面的错误",
        "n_entries": "{count} 个条目", "n_concepts": "{count} 个概念",
        "n_aliases": "{count} 个别名", "n_gaps": "{count} 个已知空白",
        "n_warnings": "{count} 条提醒", "n_errors": "{count} 处错误",
        "kb_ok": "检查通过：{entries}、{concepts}、{aliases}、{gaps}，{warnings}",
        "kb_failed": "检查未通过：{errors}，{warnings}",
        "kb_confusable": "容易混淆的条目对（问法相似度 {score:.2f} 以上；把问法写得更具体、给概念加"
                         "提示词，或用 related 把两条互相链接）：{count}",
        "kb_confusable_none": "无",
        "kb_linked": "（已用 related 链接）",
        # Problems `kb check` finds: file:line: message
        "kb_warning": "提醒：",
        "kb_yaml_syntax": "YAML 格式错误（常见原因：冒号后面少了空格、括号或引号没有配对、缩进"
                          "不齐）：{detail}",
        "kb_yaml_error": "YAML 错误：{detail}",
        "kb_not_utf8": "不是 UTF-8 编码的文本（{reason}）：请在编辑器里用 UTF-8 编码另存",
        "kb_no_front_matter": "缺少信息栏：文件第一行必须是 '---'，接着写各个栏目，再用一行 '---' "
                              "结束",
        "kb_front_matter_empty": "信息栏是空的",
        "kb_front_matter_lines": "信息栏必须是一行一个“栏目: 内容”",
        "kb_field_name": "栏目名必须是像 'title:' 这样的英文词，不能是 {name}",
        "kb_unknown_field": "未知栏目 '{field}'（可用的栏目见 knowledge/README.md）",
        "kb_missing_field": "缺少栏目 '{field}'",
        "kb_empty_answer": "答案正文（第二个 '---' 之后的文字）是空的",
        "kb_bad_id": "id '{id}' 只能用小写英文字母、数字和 '-'，长 2–40 个字符",
        "kb_few_questions": "问法至少要有 {least} 个，现在只有 {count} 个",
        "kb_bad_basis": "依据 '{basis}' 不认识，请写以下之一：{choices}",
        "kb_bad_as_of": "as_of '{value}' 必须是日期，如 2025-05-19、2025-05 或 2025",
        "kb_official_source": "依据写了官方规则，但来源里没有小红书自己的文件（{host} 等小红书"
                              "网站上的网页）；转述或转载规则的网页请写 媒体报道",
        "kb_bad_full_date": "{field} '{value}' 必须是完整日期，如 2026-08-31",
        "kb_until_before_from": "valid_until 早于 valid_from",
        "kb_not_a_list": "这里应该是列表（每行以 '- ' 开头）",
        "kb_bad_list_item": "列表项 {item} 必须是非空的文字",
        "kb_sources_not_list": "sources 必须是列表，每项写 ref 和 date",
        "kb_source_fields": "每个来源都要有 ref（种子文件名或网页地址）和 date",
        "kb_bad_source_date": "来源日期 '{value}' 必须是日期，如 2025-05-19、2025-05、2025，或写 "
                              "'undated'",
        "kb_concepts_shape": "concepts.yaml 必须是概念的列表（每个概念以 '- id: ...' 开头）",
        "kb_concept_shape": "每个概念都要写成若干行“栏目: 内容”",
        "kb_concept_missing": "概念缺少 {fields}",
        "kb_sense_fields": "每种意思都要有 id、label 和 entries",
        "kb_two_senses": "概念 '{concept}' 至少要有两种意思",
        "kb_aliases_shape": "aliases.yaml 需要 'aliases:' 和 'terms:' 两部分",
        "kb_alias_no_target": "别名 '{alias}' 没有写对应的规范说法",
        "kb_gaps_shape": "gaps.yaml 必须是已知空白的列表（每项以 '- id: ...' 开头）",
        "kb_gap_shape": "每个已知空白都要写成若干行“栏目: 内容”",
        "kb_gap_unknown_field": "未知栏目 '{field}'（已知空白可用的栏目：{fields}）",
        "kb_gap_missing": "已知空白缺少 {fields}",
        "kb_scope_shape": "scope.yaml 需要 'other_platforms:'、'declined_requests:' 这样的列表",
        "kb_no_folder": "找不到知识库文件夹",
        "kb_not_md": "没有读取：条目必须是 .md 文件（改名为 .md，或移出 entries/）",
        "kb_duplicate_id": "id '{id}' 重复（{where} 也用了它）",
        "kb_no_entries": "没有找到任何条目",
        "kb_no_english": "没有英文版：请加 title_en、questions_en（至少 {least} 个），并在中文答案"
                         "后面单独一行写 '{marker}'，下面写英文答案",
        "kb_english_question": "“{question}”是英文问法，请移到 questions_en"
                               "（questions 放中文问法）",
        "kb_unknown_related": "相关条目 '{ref}' 不存在",
        "kb_unknown_concept": "概念 '{concept}' 没有在 concepts.yaml 里定义（已定义的：{defined}）",
        "kb_concept_unknown_entry": "概念 '{concept}' 引用了不存在的条目 '{ref}'",
        "kb_question_elsewhere": "问法 '{question}' 和条目 '{other}'（{where}）里的重复了",
        "kb_question_repeated": "问法 '{question}' 在这个条目里已经有了（第 {at} 行）",
    },
    "en": {
        "which_one": "Which of these do you mean?",
        "none_label": "None of these",
        "not_covered": "Sorry, the knowledge base has nothing I can answer this from reliably, "
                       "and I won't guess. The question has been logged for the maintainers.",
        "none_of_these": "All right, I can't answer that yet; the question has been logged.",
        "known_gap": "The knowledge base cannot answer this yet: {topic}. {note} (This is a "
                     "known gap, last checked {checked}; the question has been logged and "
                     "will be answered once a reliable source is found.)",
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
        "welcome": "You're welcome! Send me any other question whenever you like.",
        "rate_limited": "You're asking very fast; please wait a minute before the next question.",
        "empty_ask": "Please write your question after the command, e.g. /ask how do I open a "
                     "shop",
        "examples_separator": "; ",
        "list_separator": ", ",
        "basis": "Basis", "as_of": "as of", "sources": "Sources", "colon": ": ",
        "bar": " | ", "paren_open": " (", "paren_close": ")", "source_separator": "; ",
        "undated": "undated",
        "title_open": "", "title_close": "",
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
        "stale_none": "No entry is expired or over a year old.",
        "stale_header": "Entries to review ({count}):",
        "stale_expired": "its stated period ended on {valid_until}",
        "stale_old": "as of {as_of}, over a year ago",
        "admin_only": "This command is for admins only.",
        "admin_private_only": "Please use admin commands in a private chat with the bot.",
        "thanks": "Thanks for the feedback!",
        "not_yours": "This is someone else's question; only the asker can choose.",
        "question_expired": "This question has expired; please ask again.",
        "pick_in_range": "Please reply with a number from 1 to {count} to pick one of these:",
        "thinking": "Looking for the answer…",
        "index_progress": "building the index: {done}/{total}",
        "index_ready": "index ready: {entries}, {embedded} texts embedded, {seconds:.2f}s "
                       "({encoder})",
        "index_not_built": "index not built: fix the errors above (the previous build keeps "
                           "serving)",
        "kb_no_build": "the knowledge has errors and there is no earlier build to serve",
        "n_entries": "{count} entries", "n_entries_one": "1 entry",
        "n_concepts": "{count} concepts", "n_concepts_one": "1 concept",
        "n_aliases": "{count} aliases", "n_aliases_one": "1 alias",
        "n_gaps": "{count} known gaps", "n_gaps_one": "1 known gap",
        "n_warnings": "{count} warnings", "n_warnings_one": "1 warning",
        "n_errors": "{count} errors", "n_errors_one": "1 error",
        "kb_ok": "ok: {entries}, {concepts}, {aliases}, {gaps}, {warnings}",
        "kb_failed": "failed: {errors}, {warnings}",
        "kb_confusable": "confusable entry pairs (questions at least {score:.2f} alike; sharpen "
                         "the questions, add cue words, or link the entries with related): "
                         "{count}",
        "kb_confusable_none": "none",
        "kb_linked": "(related)",
        "kb_warning": "warning: ",
        "kb_yaml_syntax": "YAML syntax error: {detail}",
        "kb_yaml_error": "YAML error: {detail}",
        "kb_not_utf8": "not UTF-8 text ({reason}); save it as UTF-8",
        "kb_no_front_matter": "missing front matter: the file must start with a '---' line, "
                              "the fields, and another '---' line",
        "kb_front_matter_empty": "the front matter is empty",
        "kb_front_matter_lines": "the front matter must be 'field: value' lines",
        "kb_field_name": "field names must be words like 'title:', not {name}",
        "kb_unknown_field": "unknown field '{field}' (knowledge/README.md lists the fields)",
        "kb_missing_field": "missing field '{field}'",
        "kb_empty_answer": "the answer (the text after the second '---') is empty",
        "kb_bad_id": "id '{id}' must be 2-40 lower-case letters, digits or '-'",
        "kb_few_questions": "needs at least {least} questions, has {count}",
        "kb_bad_basis": "basis '{basis}' must be one of {choices} (in English: {keys})",
        "kb_bad_as_of": "as_of '{value}' must be a date like 2025-05-19, 2025-05 or 2025",
        "kb_official_source": "basis 官方规则 needs the platform's own document among the sources "
                              "(a page on {host}); a page that reports or reprints a rule is "
                              "媒体报道",
        "kb_bad_full_date": "{field} '{value}' must be a date like 2026-08-31",
        "kb_until_before_from": "valid_until is before valid_from",
        "kb_not_a_list": "expected a list ('- item' lines)",
        "kb_bad_list_item": "list item {item} must be non-empty text",
        "kb_sources_not_list": "sources must be a list of 'ref' and 'date'",
        "kb_source_fields": "each source needs 'ref' (a seed file name or page address) and "
                            "'date'",
        "kb_bad_source_date": "source date '{value}' must be a date like 2025-05-19, 2025-05, "
                              "2025 or 'undated'",
        "kb_concepts_shape": "concepts.yaml must be a list of concepts ('- id: ...')",
        "kb_concept_shape": "each concept must be a mapping of fields",
        "kb_concept_missing": "concept is missing {fields}",
        "kb_sense_fields": "each sense needs id, label and entries",
        "kb_two_senses": "concept '{concept}' needs at least two senses",
        "kb_aliases_shape": "aliases.yaml needs 'aliases:' and 'terms:' sections",
        "kb_alias_no_target": "alias '{alias}' has no target",
        "kb_gaps_shape": "gaps.yaml must be a list of known gaps ('- id: ...')",
        "kb_gap_shape": "each known gap must be 'field: value' lines",
        "kb_gap_unknown_field": "unknown field '{field}' (a known gap has: {fields})",
        "kb_gap_missing": "the known gap lacks {fields}",
        "kb_scope_shape": "scope.yaml needs lists such as 'other_platforms:' and "
                          "'declined_requests:'",
        "kb_no_folder": "knowledge folder not found",
        "kb_not_md": "not read: entries are .md files (rename it to .md, or move it out of "
                     "entries/)",
        "kb_duplicate_id": "duplicate id '{id}' (also at {where})",
        "kb_no_entries": "no entries found",
        "kb_no_english": "no English version: add title_en, questions_en (at least {least}) and "
                         "a '{marker}' section after the Chinese answer",
        "kb_english_question": "'{question}' is an English question: move it to questions_en "
                               "(questions holds the Chinese ones)",
        "kb_unknown_related": "related entry '{ref}' does not exist",
        "kb_unknown_concept": "concept '{concept}' is not defined in concepts.yaml (defined: "
                              "{defined})",
        "kb_concept_unknown_entry": "concept '{concept}' names unknown entry '{ref}'",
        "kb_question_elsewhere": "question '{question}' is also in entry '{other}' ({where})",
        "kb_question_repeated": "question '{question}' is already in this entry (line {at})",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    """Return the string for key in lang (Chinese where English has none), filled in."""
    table = _COPY.get(lang, _COPY["zh"])
    template = table[key] if key in table else _COPY["zh"][key]
    return template.format(**values) if values else template


def known(key: str) -> bool:
    """Tell whether key names a string (else the text is meant literally)."""
    return key in _COPY["zh"]


def counted(lang: str, key: str, count: int) -> str:
    """Return "{count} things" in lang, singular where the language has one ("1 error")."""
    one = f"{key}_one"
    return say(lang, one if count == 1 and one in _COPY.get(lang, {}) else key, count=count)


def frame(lang: str) -> dict[str, str]:
    """Return the labels templates put around an answer, in lang."""
    keys = ("basis", "as_of", "sources", "related", "nearest", "pick", "help", "note", "colon",
            "bar", "paren_open", "paren_close", "source_separator", "title_open", "title_close")
    return {key: say(lang, key) for key in keys}
