"""Run one sweep cell in a fresh process: ``python -m igpo_kit.sweep._worker`` with a JSON payload on stdin.

The payload is text only: ``{"config_text", "bindings", "run_dir", "plugins", "argv"}`` (see
:func:`igpo_kit.sweep.run.run_cells`). Exit status 0 when the run finished (``DONE`` written), 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import traceback


def main() -> int:
    payload = json.loads(sys.stdin.read())
    from igpo_kit.runner import execute

    try:
        execute(payload["config_text"], payload.get("bindings", []), payload["run_dir"], payload.get("plugins", []),
                argv=payload.get("argv"))
    except BaseException as exc:  # noqa: BLE001 - report and exit non-zero; FAILED is already written
        traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: {type(exc).__name__}: {msg}", file=sys.stderr, flush=True)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
