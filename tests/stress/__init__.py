"""Load, churn and broadcast stress tests (slow; a server in a child process)."""
