"""In-run baselines, scored on the same examples as the model."""

from p5rec.baselines.global_mean import GlobalMean
from p5rec.baselines.majority import Majority
from p5rec.baselines.popularity import Popularity

__all__ = ["GlobalMean", "Majority", "Popularity"]
