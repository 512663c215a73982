"""Every raw cryptographic primitive lives here; the rest calls intention-named recipes."""
