"""The SAT's public status service: the seam (client), the expression, the answer, the schedule, the verdict."""
