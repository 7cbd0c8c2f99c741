"""The application tier: the only part of the package that knows every layer.

Jobs (the pipeline's steps as functions), the demo, the command line and what it renders.
"""
