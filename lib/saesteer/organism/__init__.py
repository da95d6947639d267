"""The model organism: its synthetic language, tokenizer, training, behaviour judges, probes and build."""
