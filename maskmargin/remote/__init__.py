"""Client of a remote Image Masking API (Runware's or a self-hosted `serve`), and its detector."""
