"""The PAC (Solución Factible): the zeep seam, the code table, what a reply means, the acuse check, the breaker."""
