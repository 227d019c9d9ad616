"""Callbacks around Lightning's loop: multi-scale, guards for interrupts and NaNs, the progress bar, the image writer."""
