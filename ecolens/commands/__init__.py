"""One module per `ecolens` subcommand."""
