"""Per-recipient delivery plan: verified TLS, S/MIME, PGP, portal."""
