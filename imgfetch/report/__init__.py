"""What a person sees of a run: summary.py counts records and groups failure reasons,
progress.py draws the progress bar (fed the list's size by sources.ListCounter), contact.py draws
the contact sheet of thumbnails (samples.py finds each image: a file, or a sample in a dataset shard),
results.py holds the Results that download() returns.
"""
