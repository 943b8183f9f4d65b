"""The learning curve mode: the driver and its CNN cells (`curve`), the
linear arms and their choice (`arms`) and its Markdown report (`report`).
"""
