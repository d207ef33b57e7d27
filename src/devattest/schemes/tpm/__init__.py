"""devattest schemes.tpm."""
