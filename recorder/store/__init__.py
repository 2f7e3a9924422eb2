"""The append-only event log, its projections and the schema."""
