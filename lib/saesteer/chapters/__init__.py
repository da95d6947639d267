"""One module per notebook: its parameters, checks, claims and figures. Nothing imports a chapter."""
