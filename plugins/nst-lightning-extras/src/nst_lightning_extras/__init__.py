"""Extra components for nst-lightning: two style losses and a ResNet backbone."""

from .backbones import ResNet
from .losses import HistogramStyleLoss, WassersteinStyleLoss

__all__ = ["HistogramStyleLoss", "ResNet", "WassersteinStyleLoss"]
