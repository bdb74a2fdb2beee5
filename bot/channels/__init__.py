"""Chat channels: each converts its platform's events into `Inbound` and renders replies."""
