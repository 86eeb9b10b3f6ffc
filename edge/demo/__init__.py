"""`edge demo`: the whole system on one machine, with throwaway identities."""
