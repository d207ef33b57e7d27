"""devattest verifier."""
