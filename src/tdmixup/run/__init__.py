"""A run folder's stages wired together: the session, the AUM stage, the pipeline of
``tdmixup run``, the paper's experiments, and the one-call APIs ``fit`` and
``find_label_issues``.
"""
