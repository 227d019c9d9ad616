"""The model: the LightningModule whose only parameter is the image, with its backbone, losses and optimizer."""
