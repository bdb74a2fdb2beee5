"""WeCom (企业微信): the intelligent robot and the self-built app, on the bot's HTTP server."""

from bot.channels.wecom.server import WeComChannel, WeComConfig, WeComServer, plug

__all__ = ["WeComChannel", "WeComConfig", "WeComServer", "plug"]
