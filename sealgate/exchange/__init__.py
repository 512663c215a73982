"""Microsoft 365 / Exchange connectors (msal on-behalf-of, exchangelib, Graph)."""
