"""Subcommands of the ``legonn`` command: one module per subcommand."""
