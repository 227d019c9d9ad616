"""Images in and out: reading any image file as an RGB tensor, writing PNGs, colour and mask images."""
