"""Attach mode: the tables of an existing Label Studio, read (never written) on the `labelstudio` database.

Installed only when LABEL_STUDIO_DATABASE_URL is set. Its models are unmanaged and have no migrations: the
service's migrations never run on Label Studio's database (`router.LabelStudioRouter`).
"""
