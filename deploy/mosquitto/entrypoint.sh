#!/bin/sh
# Mosquitto (Debian's package) for deploy/compose.yaml: the password file comes from the
# mosquitto_passwd secret (mosquitto_passwd format); mosquitto drops to its own user.
set -eu
install -d -o mosquitto -g mosquitto -m 0700 /var/lib/mosquitto /run/mosquitto
install -o mosquitto -g mosquitto -m 0600 /run/secrets/mosquitto_passwd /run/mosquitto/passwd
exec mosquitto -c /deploy/mosquitto.conf
