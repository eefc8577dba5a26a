"""Where results land on disk: files.py makes safe file names, writes images atomically and
locks the output folder (noreplace.py puts a file at a free name, with or without hard links;
locking.py holds a lock file); manifest.py appends records to the manifest, keeps the resume index
(what earlier runs finished or failed) and compacts the manifest; errorlist.py writes --errors;
journal.py notes images before they are recorded; outputs.py checks output paths; a dataset's shards:
shards.py fills them in the worker processes (shardfiles.py: the tar, the parquet rows, the stats) and
shardset.py numbers them and puts them in place in the parent (shardmend.py mends one whose worker
died or whose last records were never read; sharedshard.py is the shard quarantine processes share);
object storage (-o s3://...): remote.py is the Destination (fsspec, imported only for a URL OUT),
remoteshards.py uploads shards and reads them back; reading.py reads the manifest back
(read_manifest); keys.py holds compact sets and maps of URL keys; dedup.py decides which images
are copies of earlier ones (--dedup), nearhash.py finds near perceptual hashes.
"""
