"""upsd: the network server, an asyncio adapter around nutapp.core."""
