"""upsd: the network server, an epoll adapter around nutapp.core."""
