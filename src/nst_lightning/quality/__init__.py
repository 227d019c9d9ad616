"""Quality you can measure: style and content distances on the caffe VGG19, whatever the run used.

``distances`` holds the definitions (pure functions on tensors), ``metrics`` the torchmetrics ``Metric``
classes built on them, and ``scoring`` the file-level yardstick that ``nst-lightning score``, the end of
every ``fit`` and the sweep's manifest all use. This package sits at the model's level: it imports
``model`` (the backbone) and ``image``; callbacks, sweep and cli import it.
"""
