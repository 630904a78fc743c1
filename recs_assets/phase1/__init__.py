"""Phase 1 tables (interactions, users, items): sources, validation and raw assets."""
