"""Backbones: frozen feature extractors that map an RGB image in [0, 1] to named feature maps."""
