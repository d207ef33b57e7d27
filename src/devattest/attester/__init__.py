"""devattest attester."""
