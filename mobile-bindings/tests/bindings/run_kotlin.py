"""Runs the Kotlin scenario (kotlin/FieldScenario.kt, compiled by scripts/test-bindings) against
a fresh, seeded `gridsync serve` and a village office hub enrolled with it.

    run_kotlin.py SCENARIO_JAR JNA_JAR LIB_DIR JNA_NATIVE_DIR
"""

import os
import subprocess
import sys
import tempfile

from harness import Hub, Server, log


def main():
    jar, jna_jar, lib_dir, jna_native = sys.argv[1:5]
    server = Server()
    hub = Hub(server)
    try:
        with tempfile.TemporaryDirectory(prefix="gridsync-kotlin-") as work:
            command = [
                "java",
                f"-Djna.library.path={lib_dir}",
                f"-Djna.boot.library.path={jna_native}",
                "-cp",
                f"{jar}:{jna_jar}",
                "FieldScenarioKt",
                server.base,
                os.environ["FIELD_FIXTURE"],
                server.db,
                work,
                hub.base,
                hub.id,
            ]
            log("$ " + " ".join(command))
            sys.exit(subprocess.run(command, timeout=600).returncode)
    finally:
        hub.close()
        server.close()


if __name__ == "__main__":
    main()
