"""devattest: device attestation for IoT fleets."""
