"""Benchmark mode (``imgfetch bench``): the textbook download loop and process pool beside
imgfetch's engine over a sweep of workers x threads, each run time-boxed, then the table, advice,
JSON and chart (the command itself, which prints them, is ``imgfetch/cli/bench.py``).
``settings`` declares its options; ``plan`` holds the rows and the report; ``measure`` runs the rows (``bursts`` the note on a warm Downloader against a fresh download(), ``classic`` the textbook baselines, ``folders`` where runs save, ``serverproc``
the built-in server); ``advice`` reads the numbers; ``table``, ``jsondoc`` and ``chart`` show them.
"""
