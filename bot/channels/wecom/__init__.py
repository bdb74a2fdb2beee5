"""channels/wecom."""
