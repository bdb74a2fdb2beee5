"""Render channel-neutral replies with jinja2 templates, one template per output format."""

from __future__ import annotations

from functools import cache

import jinja2

from bot.replies import Reply

_FORMATS = {"text": "reply.txt.j2"}

# The frame around an answer, in the user's language; the answers themselves are Chinese.
LABELS = {
    "zh": {
        "basis": "依据", "as_of": "信息截至", "sources": "来源",
        "related": "相关问题（回复序号查看）：", "nearest": "你可能想问（回复序号查看）：",
        "pick": "（回复序号或选项文字即可）",
        "help": "官方帮助：普通用户可在小红书 App「我」→「设置」→「帮助与客服」咨询；"
                "商家可在商家后台联系商家客服。",
        "note": "",
    },
    "en": {
        "basis": "Basis", "as_of": "as of", "sources": "Sources",
        "related": "Related questions (reply with a number):",
        "nearest": "Maybe you meant (reply with a number):",
        "pick": "(Reply with the number or the option text.)",
        "help": "Official help: in the Xiaohongshu app, Me → Settings → Help & Support; "
                "merchants can contact merchant support in the seller back office.",
        "note": "(The knowledge base is written in Chinese.)",
    },
}


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(reply: Reply, fmt: str = "text") -> str:
    """Render reply in fmt ("text"); HTML formats escape everything user-provided."""
    template = _environment(fmt.startswith("html")).get_template(_FORMATS[fmt])
    labels = LABELS.get(reply.lang, LABELS["zh"])
    return template.render(reply=reply, entry=reply.entry, t=labels).strip()
