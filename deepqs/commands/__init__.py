"""Sub-commands of the ``deepqs`` command line (see ``deepqs.cli``)."""
