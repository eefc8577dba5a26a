"""Where results land: files, the manifest, dataset shards, object storage.

The README's Architecture section maps its modules.
"""
