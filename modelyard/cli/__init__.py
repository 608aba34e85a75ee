"""The `modelyard` command: its subcommands, the Argo commands and the run summary."""
