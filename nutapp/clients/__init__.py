"""NUT clients: the protocol client library and upsc, upscmd, upsrw."""
