"""The ``xfv`` command: the composition root that may import every part."""
