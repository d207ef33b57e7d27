"""One atheris (libFuzzer) run of one target: ``python -m fuzz._atheris TARGET [libFuzzer
arguments and corpus directories]``. The project's modules are imported instrumented, so the
fuzzer is guided by coverage of devattest's own code (and cbor2's pure-Python parts)."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["devattest", "cbor2"]):
    import devattest.ear
    import devattest.lifecycle.machine
    import devattest.provisioning
    import devattest.schemes.eat
    import devattest.schemes.psa
    import devattest.schemes.tpm
    import devattest.transport.mqtt
    import devattest.verifier  # noqa: F401

from fuzz.targets import TARGETS


def main() -> None:
    name = sys.argv.pop(1)
    target = TARGETS[name]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
