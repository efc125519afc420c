"""The web application of ``a2i serve``, apart from the command that starts it.

:mod:`~a2i.serve.models` is what it offers (the models found, the shipped one) and draws (tested
without a browser), :mod:`~a2i.serve.app` the gradio page over it, :mod:`~a2i.serve.server`
serves the page; :mod:`a2i.commands.serve` only parses the arguments.
"""
