"""Where results land: files, the manifest, dataset shards, object storage (the README's Architecture maps it)."""
