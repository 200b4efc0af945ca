"""Plain data that stages exchange: conversations with per-message loss flags."""

from coursecorrect.data.conversation import Conversation, Message, read_conversations, write_conversations

__all__ = ["Conversation", "Message", "read_conversations", "write_conversations"]
