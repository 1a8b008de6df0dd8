"""Training: runtime setup, optimizers and LR schedules, the step loop, and one run's stages."""
