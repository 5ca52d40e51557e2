"""The command line: commands, the one output module, the demo, config check. Only it knows exit codes."""
