"""The client command groups of ``lorafleet`` (each an HTTP client of a running server)."""
