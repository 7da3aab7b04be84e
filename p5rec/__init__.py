"""p5rec: generative recommendation as language processing.

One language model is trained on many recommendation tasks rendered from prompt
templates; recommendations come from constrained beam search over item-ID tokens.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
