"""devattest schemes.eat."""
