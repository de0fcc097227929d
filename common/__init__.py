"""Pieces shared by the daemons: configuration parsing, structured logging, the HTTP server."""
