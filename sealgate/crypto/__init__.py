"""Every raw cryptographic primitive lives here; the rest of the code calls intention-named recipes."""
