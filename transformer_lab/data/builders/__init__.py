"""TFDS dataset builders; importing a builder's module registers it with TFDS.

Each builder prepares without TensorFlow or network access:
`builder.download_and_prepare(file_format='array_record')`, then read it
with `builder.as_data_source(split=...)` or `tfds.data_source(name, ...)`.
"""
