"""The Image Masking API as a self-hosted service: a transport-free core and its HTTP front."""
