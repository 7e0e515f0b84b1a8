"""Pure metric functions (FID/KID, image SWD, latent diagnostics, reconstruction error)."""
