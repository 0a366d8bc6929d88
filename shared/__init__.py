"""The contract in code: event models, stream names, money, partners, signing, settings, logging."""
