"""The web application of ``a2i serve``, apart from the command that starts it.

:mod:`~a2i.serve.models` is what it offers and draws (tested without a browser),
:mod:`~a2i.serve.app` the gradio page over it; :mod:`a2i.commands.serve` parses the arguments
and chooses the models offered first.
"""
