"""Persistence: SQLAlchemy models, repositories, the encrypted blob store."""
