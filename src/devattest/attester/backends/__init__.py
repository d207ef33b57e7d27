"""devattest attester.backends."""
