"""What a person sees of a run (the README's Architecture section maps its modules)."""
