"""The process: the scheduled loops, start and stop, systemd, Prometheus, health."""
