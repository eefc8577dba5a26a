"""One URL -> bytes (the README's Architecture section maps its modules)."""
