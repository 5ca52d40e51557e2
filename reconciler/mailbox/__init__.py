"""The notification mailbox: the imapclient seam, the parser, trust, judgement and plan, the watcher."""
