"""ComfyUI nodes: thin adapters from ComfyUI types, devices, folders and progress to the engine."""
