"""xhs-policy-bot: answers Xiaohongshu sellers' policy questions from a curated knowledge base."""
