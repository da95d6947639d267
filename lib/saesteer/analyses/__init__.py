"""The papers' methods, as functions any chapter may call (no parameters, claims or figures here)."""
