"""The HTTP client side of ``lorafleet``: configuration, the API session, output, errors, job following."""
