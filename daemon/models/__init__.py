"""Model registry (where each model lives, its hash, fetching) and loaders.

``registry`` is light (paths and hashes only: safe in the parent process);
``loaders`` imports torch, faster-whisper, onnxruntime… inside its functions and
runs only in worker children or in one-shot CLI commands.
"""
