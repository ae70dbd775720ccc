"""Foundations every stage uses: the configs with the paper's defaults, run-folder names,
atomic file writes, array checks, class counts and the sample-id files.
"""
