"""Latent Noise Segmentation: train autoencoders on Good Gestalt images and segment them with latent noise."""

__version__ = "0.1.0"
