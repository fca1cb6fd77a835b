"""The configs: ``--config=configs/NAME.py[:VARIANT]``; ``common`` holds the families' builders."""
