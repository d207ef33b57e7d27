"""devattest schemes.psa."""
