"""The receiver: accepts associations and spools every object durably before answering.

Nothing here decodes pixel data or writes output; see ``workers`` for that.
"""
