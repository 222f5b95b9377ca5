"""Decides what each submitted event is worth: trust score, reasons, decision."""
