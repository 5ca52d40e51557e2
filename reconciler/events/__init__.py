"""Outcomes out: the outbox rows, Standard Webhooks delivery, command hooks, the dispatcher that drives them."""
