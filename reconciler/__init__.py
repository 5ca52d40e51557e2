"""reconciler: cancel CFDI invoices through Solución Factible and reconcile the outcome."""

__version__ = "0.1.0"
