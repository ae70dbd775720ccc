"""One training step per strategy: MixUp's building blocks (:mod:`~tdmixup.strategies.mixing`),
``compute_step`` (:mod:`~tdmixup.strategies.step`), Kong et al.'s regularisers, the AUM/saliency
variant and the back-translation baseline.
"""
