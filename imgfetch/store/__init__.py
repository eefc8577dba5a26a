"""Where results land on disk: files.py makes safe file names, writes images atomically and
locks the output folder (noreplace.py puts a file at a free name, with or without hard links); manifest.py appends records to the manifest, keeps the resume index
(what earlier runs finished) and compacts the manifest; reading.py reads the manifest back
(read_manifest); keys.py holds compact sets and maps of URL keys.

May import: imgfetch.errors, imgfetch.records
"""
