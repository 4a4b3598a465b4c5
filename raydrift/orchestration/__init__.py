"""Ray layer: Train/Tune wiring, studies, storage, W&B."""
